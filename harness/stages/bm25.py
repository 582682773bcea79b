"""Stage 1, BM25: one Lucene index per corpus, one BM25 run per (queries, depth), shared by every recipe.

The run gives the BM25 rows of every table, the candidates the teacher reranks and the pools hard negatives
are drawn from."""

from __future__ import annotations

import time

from harness.artifacts import SHARED, Stage, Store
from harness.artifacts.environment import package_versions
from harness.data import Dataset
from harness.evaluate import Run, read_trec, write_trec


def bm25_index(store: Store, ds: Dataset, fields) -> Stage:
    """The Lucene index of ``ds``'s corpus over ``data.doc_fields``."""
    from harness.index.lucene import build_bm25_index

    stage = store.stage("bm25-index", {
        "corpus": ds.corpus_fingerprint(), "fields": list(fields), "pyserini": package_versions().get("pyserini"),
    }, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(build_bm25_index(ds.docs(), fields, out / "index"))
    return stage


def bm25_run(store: Store, index: Stage, ds: Dataset, bm25, depth: int) -> Stage:
    """BM25 (``[bm25]`` k1, b) top-``depth`` for every judged query of ``ds`` from ``index`` (run.trec)."""
    from harness.index.lucene import bm25_search

    stage = store.stage("bm25-run", {"index": index.hash, "topics": ds.topics_fingerprint(), "k1": bm25.k1,
                                     "b": bm25.b, "depth": depth}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            t0 = time.perf_counter()
            run = bm25_search(index.dir / "index", ds.queries, k=depth, k1=bm25.k1, b=bm25.b)
            write_trec(run, out / "run.trec", tag="bm25")
            stage.info.update(queries=len(run), search_seconds=round(time.perf_counter() - t0, 3))
    return stage


def read_run(stage: Stage) -> Run:
    return read_trec(stage.dir / "run.trec")
