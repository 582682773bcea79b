"""Cached BM25 stages, shared by every recipe: one Lucene index per corpus, one run per (queries, depth)."""

from __future__ import annotations

from harness.artifacts import SHARED, Stage
from harness.artifacts.environment import package_versions
from harness.context import RunContext
from harness.data import Dataset
from harness.evaluate import Run, read_trec, write_trec


def bm25_index(ctx: RunContext, ds: Dataset) -> Stage:
    from harness.index.lucene import build_bm25_index

    fields = ctx.recipe.data.doc_fields
    stage = ctx.store.stage("bm25-index", {
        "corpus": ds.corpus_fingerprint(), "fields": list(fields), "pyserini": package_versions().get("pyserini"),
    }, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(build_bm25_index(ds.docs(), fields, out / "index"))
    return stage


def bm25_run(ctx: RunContext, ds: Dataset, depth: int) -> Stage:
    """BM25 top-``depth`` for every judged query of ``ds`` (run.trec)."""
    import time

    from harness.index.lucene import bm25_search

    index = bm25_index(ctx, ds)
    k1, b = ctx.recipe.bm25.k1, ctx.recipe.bm25.b
    stage = ctx.store.stage("bm25-run", {"index": index.hash, "topics": ds.topics_fingerprint(), "k1": k1, "b": b,
                                         "depth": depth}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            t0 = time.perf_counter()
            run = bm25_search(index.dir / "index", ds.queries, k=depth, k1=k1, b=b)
            write_trec(run, out / "run.trec", tag="bm25")
            stage.info.update(queries=len(run), search_seconds=round(time.perf_counter() - t0, 3))
    return stage


def load_bm25_run(ctx: RunContext, ds: Dataset, depth: int) -> Run:
    stage = bm25_run(ctx, ds, depth)
    return ctx.memo(f"bm25-run:{stage.hash}", lambda: read_trec(stage.dir / "run.trec"))
