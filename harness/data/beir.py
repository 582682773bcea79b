"""A local folder in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

``corpus.jsonl`` lines are ``{"_id", "title", "text"}``; ``queries.jsonl`` lines ``{"_id", "text"}``;
qrels are tab-separated with a header ``query-id  corpus-id  score``. Ids are strings.
"""

from __future__ import annotations

import csv
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from harness.data.dataset import Dataset, Doc, Qrels
from harness.errors import DataError

LAYOUT = "corpus.jsonl, queries.jsonl and qrels/<split>.tsv (BEIR layout)"


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def splits_of(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


class BeirFolder(Dataset):
    def __init__(self, folder: Path, split: str, dataset_id: str):
        self.folder, self.split, self.id = folder, split, dataset_id
        self.source = f"{folder} (split {split})"
        self.corpus_path = folder / "corpus.jsonl"
        self.queries_path = folder / "queries.jsonl"
        self.qrels_path = folder / "qrels" / f"{split}.tsv"

    def check(self) -> None:
        """Raise a DataError naming every missing file, before any work starts."""
        missing = [p for p in (self.corpus_path, self.queries_path) if not p.is_file()]
        if missing:
            raise DataError(f"{self.id}: {', '.join(str(p) for p in missing)} not found; a BEIR folder holds "
                            f"{LAYOUT}")
        if not self.qrels_path.is_file():
            have = splits_of(self.folder)
            raise DataError(f"{self.id}: no qrels for split \"{self.split}\" ({self.qrels_path} not found); "
                            f"splits in {self.folder}: {', '.join(have) or 'none'}")

    # Opening a dataset checks its content first (harness.data.checks): a collection with problems is read
    # here only when the recipe says data.on_problem = "warn". Then undecodable bytes are replaced, lines
    # that are not a JSON object with an "_id" are skipped and fields that are not strings read as empty:
    # what the checks reported, and the run recorded, is what is left out.

    def _iter_docs(self) -> Iterator[Doc]:
        with open(self.corpus_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                row = _row(line)
                if row is not None:
                    yield Doc(str(row["_id"]), _text(row.get("title")), _text(row.get("text")))

    def _load_queries(self) -> dict[str, str]:
        out: dict[str, str] = {}
        with open(self.queries_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                row = _row(line)
                if row is not None:
                    out[str(row["_id"])] = _text(row.get("text"))
        return out

    def _load_qrels(self) -> Qrels:
        qrels: Qrels = {}
        with open(self.qrels_path, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for lineno, row in enumerate(reader, 1):
                if not row or (lineno == 1 and row[0] == "query-id"):
                    continue
                try:
                    qid, did, rel = row[0], row[1], int(row[2])
                except (IndexError, ValueError):
                    continue  # reported by the checks (data.on_problem = "warn" runs without it)
                qrels.setdefault(qid, {})[did] = rel
        return qrels

    def corpus_fingerprint(self) -> str:
        return f"beir-corpus:{file_sha256(self.corpus_path)}"

    def topics_fingerprint(self) -> str:
        return f"beir-topics:{file_sha256(self.queries_path)}:{file_sha256(self.qrels_path)}"


def _row(line: str) -> "dict | None":
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("_id"), (str, int)) and \
        not isinstance(row.get("_id"), bool) and str(row["_id"]).strip() else None


def _text(value) -> str:
    return value if isinstance(value, str) else ""
