"""Stage 2, training groups: ``train.dataset`` split into a training part and a dev part (never trained on),
then each training query's positives and ``negatives.count`` hard negatives drawn from its BM25 pool
(:func:`harness.distill.groups.build_groups`)."""

from __future__ import annotations

from harness.artifacts import SHARED, Stage, Store
from harness.data import Dataset
from harness.distill.groups import Group, build_groups, read_groups, write_groups
from harness.stages.bm25 import read_run


def split(train, on_problem: str) -> "tuple[Dataset, Dataset | None, list[str]]":
    """``[train]``'s dataset opened and split once: (training part, dev part or None, data problems)."""
    from harness.data import dev_split, open_dataset

    ds = open_dataset(train.dataset, on_problem=on_problem)
    problems = [f"{train.dataset}: {p}" for p in getattr(ds, "problems", [])]
    part, dev = dev_split(ds, train.dev_fraction, train.dev_max_queries)
    return part, dev, problems


def training_part(part: Dataset, train) -> Dataset:
    """The training part cut to ``train.max_queries``, plus ``train.pseudo_queries``."""
    from harness.data import DatasetSlice
    from harness.data.dataset import WithTitleQueries

    out = DatasetSlice(part, max_queries=train.max_queries) if train.max_queries else part
    if train.pseudo_queries == "titles":
        out = WithTitleQueries(out, train.pseudo_max_queries)
    return out


def groups_stage(store: Store, train: Dataset, pool: Stage, negatives, seed: int) -> Stage:
    """Groups of ``train``'s judged queries with negatives drawn from ``pool`` (its BM25 run)."""
    stage = store.stage("groups", {"pool": pool.hash, "topics": train.topics_fingerprint(),
                                   "count": negatives.count, "seed": seed}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            groups = build_groups(train.qrels, read_run(pool), negatives.count, seed)
            write_groups(groups, out / "groups.jsonl")
            stage.info.update(groups=len(groups), pairs=sum(len(g.doc_ids) for g in groups),
                              short=sum(len(g.negatives) < negatives.count for g in groups))
    return stage


def read(stage: Stage) -> list[Group]:
    return read_groups(stage.dir / "groups.jsonl")
