"""Stage 7, retrieval: one run file per (recipe, eval set), in the recipe's run directory.

A method gives the key of what produced the run and a function writing it: BM25 and the teacher-as-reranker
copy their shared stage's run; a student searches its index (plus the exhaustive search, when asked, to
report what the approximate index loses)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

from harness.artifacts import Stage, Store
from harness.data import Dataset

Produce = Callable[[Path], dict]


def retrieve_stage(store: Store, run_name: str, ds: Dataset, method: str, key: dict[str, Any],
                   produce: Produce) -> Stage:
    stage = store.stage(f"retrieve-{ds.slug}", {"method": method, **key}, scope=run_name)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(produce(out) or {})
    return stage


def copy_of(stage: Stage) -> Produce:
    """A run file that is a shared stage's (BM25, the teacher reranking)."""
    def produce(out: Path) -> dict:
        shutil.copyfile(stage.dir / "run.trec", out / "run.trec")
        return {"from": str(stage.dir)}

    return produce


def student_search(recipe, index: Stage, ds: Dataset, load_student: Callable, tag: str
                   ) -> "tuple[dict[str, Any], Produce]":
    """``ds``'s queries (at the query evaluation length) against the student's ``index``, to ``eval.depth``,
    per ``[index]``; an exhaustive search beside it when ``index.exact`` asks."""
    from harness.evaluate import write_trec
    from harness.index.base import overlap_at_k
    from harness.index.students import search_corpus
    from harness.students import eval_lengths
    from harness.students.families import family_of

    query_len, _ = eval_lengths(recipe)
    cfg = recipe.index
    n_docs = index.info.get("documents", 0)
    approximate = cfg.search == "index"
    exact = approximate and (cfg.exact == "always" or (cfg.exact == "auto" and n_docs <= cfg.exact_max_docs))
    search_cfg = family_of(recipe).search_key(recipe) if approximate else {}
    key = {"index": index.hash, "topics": ds.topics_fingerprint(), "depth": recipe.eval.depth, "exact": exact,
           "search": search_cfg, "latency_queries": cfg.latency_queries, "query_max_len": query_len}

    def produce(out: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        run, exact_run, figures = search_corpus(recipe.student.family, load_student(), index.dir, ds.queries,
                                                recipe.eval.depth, cfg, exact, query_len, approximate)
        write_trec(run, out / "run.trec", tag=tag)
        if exact_run is not None:
            write_trec(exact_run, out / "exact.trec", tag=f"{tag}-exact")
            for k in (10, 100):
                figures[f"overlap@{k}_vs_exact"] = round(overlap_at_k(run, exact_run, k), 4)
        figures["retrieve_seconds"] = round(time.perf_counter() - t0, 2)
        return figures

    return key, produce
