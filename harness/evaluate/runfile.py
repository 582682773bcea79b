"""TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError

Run = dict[str, list[tuple[str, float]]]  # qid -> [(doc_id, score)] best first


def write_trec(run: Run, path: Path, tag: str = "harness") -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for qid, hits in run.items():
            for rank, (doc_id, score) in enumerate(hits, 1):
                fh.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def read_trec(path: Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise DataError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            run.setdefault(parts[0], []).append((parts[2], float(parts[4])))
    for hits in run.values():
        hits.sort(key=lambda h: -h[1])
    return run
