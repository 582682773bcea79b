"""Is a local collection sound? Checked once when it is opened, before any work, and cached by content.

A BEIR folder's files are read once, line by line, for what would otherwise give silently wrong numbers
or a traceback deep inside indexing:

* ``corpus.jsonl`` / ``queries.jsonl``: text that is not UTF-8, a line that is not a JSON object, a
  missing or empty ``_id``, a duplicate id (same text or not), a ``title``/``text`` that is null or not a
  string (a query's ``text`` is required), no documents or no queries at all;
* ``qrels/<split>.tsv``: a row that is not ``query-id <TAB> corpus-id <TAB> integer score``, a judged
  query absent from ``queries.jsonl``, a judged document absent from the corpus.

Each problem is ``file:line: what`` (a whole-file problem has no line). The verdict is cached in
``$HARNESS_CACHE_DIR`` (default ``~/.cache/distill-harness``) under the files' SHA-256, so a collection is
read for checking once per content, not once per run. What to do with problems is the recipe's
``data.on_problem``: ``error`` (default) refuses the run (exit 2), ``warn`` runs and records them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

CHECK_VERSION = 1  # bump when the checks change: cached verdicts of older checks are not reused
MAX_PROBLEMS = 20  # kept per collection (the count is exact)


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "distill-harness") / "data-checks"


def _jsonl(path: Path, kind: str, problems: list[str], text_required: bool) -> dict[str, int]:
    """{id: line} of a JSON-lines file, appending its problems."""
    ids: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(f"{path}:{lineno}: not UTF-8 (byte {exc.start} of the line)")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: not a JSON object ({exc.msg})")
                continue
            if not isinstance(row, dict):
                problems.append(f"{path}:{lineno}: not a JSON object")
                continue
            _id = row.get("_id")
            if _id is None or (isinstance(_id, str) and not _id.strip()) or not isinstance(_id, (str, int)) \
                    or isinstance(_id, bool):
                problems.append(f"{path}:{lineno}: \"_id\" missing or not a non-empty string ({_id!r})")
                continue
            _id = str(_id)
            for fld in ("title", "text"):
                if fld in row and not isinstance(row[fld], str):
                    problems.append(f"{path}:{lineno}: {kind} {_id}: \"{fld}\" is {json.dumps(row[fld])[:20]}, "
                                    "not a string")
            if text_required and "text" not in row:
                problems.append(f"{path}:{lineno}: {kind} {_id}: no \"text\"")
            if _id in ids:
                problems.append(f"{path}:{lineno}: duplicate {kind} id {_id!r} (first on line {ids[_id]})")
            else:
                ids[_id] = lineno
    if not ids:
        problems.append(f"{path}: no {kind}s")
    return ids


def _qrels(path: Path, doc_ids: dict[str, int], query_ids: dict[str, int], problems: list[str]) -> None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 (byte {exc.start})")
        return
    judged = 0
    unknown_q: dict[str, int] = {}
    unknown_d: dict[str, int] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t"), 1):
        if not row or (lineno == 1 and row[0] == "query-id"):
            continue
        try:
            qid, did, _ = row[0], row[1], int(row[2])
        except (IndexError, ValueError):
            problems.append(f"{path}:{lineno}: expected query-id<TAB>corpus-id<TAB>integer score, got {row!r}")
            continue
        judged += 1
        if qid not in query_ids:
            unknown_q.setdefault(qid, lineno)
        if did not in doc_ids:
            unknown_d.setdefault(did, lineno)
    for what, unknown, where in (("query", unknown_q, "queries.jsonl"), ("document", unknown_d, "the corpus")):
        if unknown:
            first, line = next(iter(unknown.items()))
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            problems.append(f"{path}:{line}: judges {what} {first!r}, which is not in {where}{more}")
    if not judged:
        problems.append(f"{path}: no judgements")


def check_beir(corpus: Path, queries: Path, qrels: Path) -> list[str]:
    """Every problem of one BEIR split (see the module doc); [] when the collection is sound."""
    problems: list[str] = []
    doc_ids = _jsonl(corpus, "document", problems, text_required=False)
    query_ids = _jsonl(queries, "query", problems, text_required=True)
    _qrels(qrels, doc_ids, query_ids, problems)
    return problems


def cached_check_beir(corpus: Path, queries: Path, qrels: Path, fingerprint: str) -> list[str]:
    """:func:`check_beir`, cached on disk under ``fingerprint`` (the files' content hash)."""
    key = hashlib.sha256(f"{CHECK_VERSION}:{fingerprint}:{corpus}:{queries}:{qrels}".encode()).hexdigest()
    path = cache_dir() / f"{key}.json"
    try:
        return list(json.loads(path.read_text())["problems"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    problems = check_beir(corpus, queries, qrels)
    try:
        from harness.artifacts import atomic_write_json

        atomic_write_json(path, {"problems": problems, "count": len(problems)})
    except OSError:
        pass  # a read-only home: check again next time
    return problems
