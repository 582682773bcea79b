"""Stage 4, the answer key: the teacher's score for every (query, passage) pair of the training groups, computed once.

Stored as ``answer_key.parquet`` (qid, pid, score, positive) in a shared stage keyed by (teacher, training
groups): every recipe with the same teacher and data reuses one key. Scoring runs in chunks of whole
queries; each finished chunk is written atomically to ``<stage>.partial/``, so an interrupted scoring
resumes where it stopped, and the final key equals an uninterrupted one (chunks are fixed by the group
order, so every pair is scored in the same batch either way).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from harness.artifacts import SHARED, Stage, Store
from harness.data import Dataset
from harness.encoding import progress
from harness.stages.bm25 import read_run
from harness.stages.groups import read as read_groups_stage
from harness.teachers.base import Request, Teacher

log = logging.getLogger("harness")

CHUNK_PAIRS = int(os.environ.get("HARNESS_ANSWER_KEY_CHUNK", "4096"))  # pairs per resumable chunk
# the teacher's cached state (passage embeddings) is computed in one plan fixed by the groups
# (Teacher.prepare), not chunk by chunk: keys made before this was so are not reused
PLAN = "fixed-v1"


def answer_key_stage(store: Store, teacher_key: dict, groups: Stage, pool: Stage, train: Dataset,
                     make: Callable[[], Teacher]) -> Stage:
    """The teacher's (identified by ``teacher_key``, built by ``make``) score of every pair of ``groups``,
    whose negatives came from ``pool`` (the BM25 run the teacher may also read, e.g. a BM25 member)."""
    stage = store.stage("answer-key", {"teacher": teacher_key, "groups": groups.hash,
                                       "corpus": train.corpus_fingerprint(), "chunk": CHUNK_PAIRS,
                                       "plan": PLAN}, scope=SHARED)
    with stage.ensure(collective=True) as out:  # under torchrun each rank scores its share of the chunks
        if out is not None:
            stage.info.update(_score_groups(stage, out, read_groups_stage(groups), read_run(pool), train, make))
    return stage


def _chunks(groups, size: int) -> list[list]:
    out, cur, n = [], [], 0
    for g in groups:
        cur.append(g)
        n += len(g.doc_ids)
        if n >= size:
            out.append(cur)
            cur, n = [], 0
    if cur:
        out.append(cur)
    return out


def _score_groups(stage: Stage, out: Path, groups, pools, train: Dataset, make: Callable[[], Teacher]) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness import distributed

    rank, ranks = distributed.rank(), distributed.size()
    partial = stage.dir.with_name(stage.dir.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(groups, CHUNK_PAIRS)
    total = sum(len(g.doc_ids) for g in groups)
    done = [i for i in range(len(chunks)) if _readable(partial / f"chunk-{i:05d}.parquet")]
    if done:
        log.info("answer key: resuming, %d of %d chunks already scored", len(done), len(chunks))
    teacher = None
    t0, scored = time.perf_counter(), 0
    with progress(total, "answer key", unit="pair") as bar:
        bar.update(sum(len(g.doc_ids) for i in done for g in chunks[i]))
        for i, chunk in enumerate(chunks):
            path = partial / f"chunk-{i:05d}.parquet"
            if i in done or i % ranks != rank:  # (another rank's chunk)
                continue
            if teacher is None:
                teacher = make()
                # every passage any chunk needs, encoded in one plan fixed by the groups (resumable in parts):
                # a chunk scored after a restart sees exactly the embeddings an uninterrupted run saw
                teacher.prepare([Request(g.qid, train.queries[g.qid], g.doc_ids, pools.get(g.qid)) for g in groups],
                                partial / "teacher" if distributed.is_main() else None)
            requests = [Request(g.qid, train.queries[g.qid], g.doc_ids, pools.get(g.qid)) for g in chunk]
            scores = teacher.score_pairs(requests)
            table = pa.table({
                "qid": [g.qid for g in chunk for _ in g.doc_ids],
                "pid": [d for g in chunk for d in g.doc_ids],
                "score": pa.array(scores, pa.float32()),
                "positive": [j < len(g.positives) for g in chunk for j in range(len(g.doc_ids))],
            })
            tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            scored += len(scores)
            bar.update(len(scores))
    seconds = time.perf_counter() - t0
    scored = sum(distributed.gather(scored))  # every rank's chunks are written once all have scored
    if not distributed.is_main():
        return {}
    table = pa.concat_tables([pq.read_table(partial / f"chunk-{i:05d}.parquet") for i in range(len(chunks))])
    pq.write_table(table, out / "answer_key.parquet")
    shutil.rmtree(partial, ignore_errors=True)
    scores = table.column("score").to_numpy()
    pos = table.column("positive").to_numpy(zero_copy_only=False)
    info = {"pairs": table.num_rows, "queries": len(groups), "scored_now": scored,
            "score_seconds": round(seconds, 2), "pairs_per_second": round(scored / seconds, 1) if scored else None,
            "score_mean": float(np.mean(scores)), "score_std": float(np.std(scores)),
            "positive_mean": float(np.mean(scores[pos])) if pos.any() else None,
            "negative_mean": float(np.mean(scores[~pos])) if (~pos).any() else None,
            "bytes": (out / "answer_key.parquet").stat().st_size}
    log.info("answer key: %d pairs of %d queries (%s pairs/s); positives %.3f vs negatives %.3f on average",
             info["pairs"], info["queries"], info["pairs_per_second"], info["positive_mean"] or 0,
             info["negative_mean"] or 0)
    return info


def _readable(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(path)
        return True
    except Exception:
        return False


def read(stage: Stage):
    """The answer key as a pandas DataFrame (qid, pid, score, positive)."""
    import pandas as pd

    return pd.read_parquet(stage.dir / "answer_key.parquet")
