"""The teacher as a reranker of BM25's top-k: the upper reference row of every comparison table."""

from __future__ import annotations

import time

from harness.artifacts import SHARED, Stage
from harness.context import RunContext
from harness.data import Dataset
from harness.evaluate import write_trec


def teacher_rerank_stage(ctx: RunContext, ds: Dataset) -> Stage:
    from harness.index.stages import bm25_run, load_bm25_run
    from harness.teachers import Request, make_teacher, teacher_key

    depth = ctx.recipe.teacher.rerank_depth
    candidates = bm25_run(ctx, ds, depth)
    stage = ctx.store.stage("teacher-rerank", {"teacher": teacher_key(ctx), "candidates": candidates.hash,
                                               "corpus": ds.corpus_fingerprint(), "plan": "fixed-v1"}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            t0 = time.perf_counter()
            pools = load_bm25_run(ctx, ds, depth)
            requests = [Request(qid, ds.queries[qid], [d for d, _ in hits], hits) for qid, hits in pools.items()]
            teacher = make_teacher(ctx, ds)
            teacher.prepare(requests)  # this stage's passages in its own fixed plan, whatever ran before
            scores = teacher.score(requests)
            run = {r.qid: sorted(zip(r.doc_ids, map(float, s)), key=lambda h: -h[1]) for r, s in zip(requests, scores)}
            write_trec(run, out / "run.trec", tag="teacher")
            pairs = sum(len(r.doc_ids) for r in requests)
            seconds = time.perf_counter() - t0
            stage.info.update(pairs=pairs, seconds=round(seconds, 2), pairs_per_second=round(pairs / seconds, 1))
    return stage
