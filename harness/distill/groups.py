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

from harness.artifacts import SHARED, Stage
from harness.context import RunContext
from harness.data import Dataset, Qrels
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


def _split(ctx: RunContext) -> "tuple[Dataset, Dataset | None]":
    """``train.dataset`` opened once per run and split once into (training part, dev part or None)."""
    from harness.data import dev_split, open_dataset

    t = ctx.recipe.train

    def make():
        ds = open_dataset(t.dataset, on_problem=ctx.recipe.data.on_problem)
        ctx.warnings.extend(f"{t.dataset}: {p}" for p in getattr(ds, "problems", []))
        return dev_split(ds, t.dev_fraction, t.dev_max_queries)

    return ctx.memo(f"split:{t.dataset}:{t.dev_fraction}:{t.dev_max_queries}", make)


def train_dataset(ctx: RunContext) -> Dataset:
    """The training queries: ``train.dataset`` without its dev split, then cut to ``train.max_queries``."""
    from harness.data import DatasetSlice

    t = ctx.recipe.train

    def make() -> Dataset:
        train = _split(ctx)[0]
        return DatasetSlice(train, max_queries=t.max_queries) if t.max_queries else train

    return ctx.memo(f"train:{t.dataset}:{t.dev_fraction}:{t.dev_max_queries}:{t.max_queries}", make)


def dev_dataset(ctx: RunContext) -> "Dataset | None":
    """The dev split carved from ``train.dataset`` (never trained on), or None when ``train.dev_fraction`` is 0."""
    return _split(ctx)[1]


def groups_stage(ctx: RunContext) -> Stage:
    from harness.index.stages import bm25_run, load_bm25_run

    train = train_dataset(ctx)
    neg = ctx.recipe.negatives
    pool_stage = bm25_run(ctx, train, neg.depth)
    stage = ctx.store.stage("groups", {"pool": pool_stage.hash, "topics": train.topics_fingerprint(),
                                       "count": neg.count, "seed": ctx.recipe.seed}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            groups = build_groups(train.qrels, load_bm25_run(ctx, train, neg.depth), neg.count, ctx.recipe.seed)
            write_groups(groups, out / "groups.jsonl")
            stage.info.update(groups=len(groups), pairs=sum(len(g.doc_ids) for g in groups),
                              short=sum(len(g.negatives) < neg.count for g in groups))
    return stage


def load_groups(ctx: RunContext) -> list[Group]:
    stage = groups_stage(ctx)
    return ctx.memo(f"groups:{stage.hash}", lambda: read_groups(stage.dir / "groups.jsonl"))
