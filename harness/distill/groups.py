"""Training groups: for each training query, its positive passages and N hard negatives from BM25.

A negative is drawn from the query's BM25 top-K, never from its positives (qrels with relevance > 0),
uniformly without replacement with a random generator seeded by (seed, query id): the same recipe gives
the same groups on every machine, and adding a query does not reshuffle the others. Negatives keep their
BM25 order. Queries with fewer than N candidates keep what there is; queries with no positive are skipped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from harness.data import Qrels
from harness.evaluate import Run


@dataclass(frozen=True)
class Group:
    qid: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]

    @property
    def doc_ids(self) -> tuple[str, ...]:
        return self.positives + self.negatives


def build_groups(qrels: Qrels, pools: Run, count: int, seed: int) -> list[Group]:
    groups = []
    for qid, judged in qrels.items():
        positives = tuple(d for d, rel in judged.items() if rel > 0)
        if not positives:
            continue
        candidates = [d for d, _ in pools.get(qid, []) if judged.get(d, 0) <= 0]
        rng = random.Random(f"{seed}:{qid}")
        picked = set(rng.sample(candidates, min(count, len(candidates))))
        groups.append(Group(qid, positives, tuple(d for d in candidates if d in picked)))
    return groups


def write_groups(groups: list[Group], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for g in groups:
            fh.write(json.dumps({"qid": g.qid, "positives": list(g.positives), "negatives": list(g.negatives)}) + "\n")


def read_groups(path: Path) -> list[Group]:
    with open(path, encoding="utf-8") as fh:
        return [Group(r["qid"], tuple(r["positives"]), tuple(r["negatives"])) for r in map(json.loads, fh)]
