"""Run a recipe: check every input, then build (or reuse) each stage, evaluate, and write the results.

    runs/
      _shared/bm25-index-<hash>/     stages any recipe can reuse (indexes, answer keys, teachers)
      <recipe>/
        manifest.json                recipe hash, inputs' fingerprints, stages, versions, git, device, timings
        results.json                 {dataset: {measure: value}} and where the run/per-query files are
        retrieve-<dataset>-<hash>/run.trec
        eval-<dataset>-<hash>/per_query.tsv, metrics.json
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.artifacts import SHARED, Store, atomic_write_json
from harness.artifacts.environment import environment, package_versions
from harness.data import Dataset, open_dataset
from harness.evaluate import Run, evaluate, read_trec, write_per_query, write_trec
from harness.recipe import LoadedRecipe

log = logging.getLogger("harness")


@dataclass
class RunContext:
    """Everything a method needs while it runs: the recipe, the store, the run directory."""

    loaded: LoadedRecipe
    store: Store
    run_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def recipe(self):
        return self.loaded.recipe


def prepare_datasets(loaded: LoadedRecipe) -> list[Dataset]:
    """Open every evaluation dataset and read its queries and qrels: fails fast, before any compute."""
    ev = loaded.recipe.eval
    out = []
    for spec in ev.datasets:
        ds = open_dataset(spec, max_queries=ev.max_queries, max_docs=ev.max_docs)
        n_q = len(ds.queries)
        if n_q == 0:
            from harness.errors import DataError

            raise DataError(f"{spec}: no judged queries (qrels and queries share no query id)")
        log.info("data   %s: %d judged queries (%s)", ds.id, n_q, ds.source)
        out.append(ds)
    return out


# ---- methods: how a run file is produced for one dataset -----------------------------------------

def _bm25_index(ctx: RunContext, ds: Dataset):
    from harness.index.lucene import build_bm25_index

    fields = ctx.recipe.data.doc_fields
    stage = ctx.store.stage("bm25-index", {
        "corpus": ds.corpus_fingerprint(), "fields": list(fields),
        "pyserini": package_versions().get("pyserini"),
    }, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(build_bm25_index(ds.docs(), fields, out / "index"))
    return stage


def _bm25_run(ctx: RunContext, ds: Dataset) -> "tuple[Any, Callable[[Path], None]]":
    from harness.index.lucene import bm25_search

    index = _bm25_index(ctx, ds)
    r = ctx.recipe
    key = {"index": index.hash, "topics": ds.topics_fingerprint(), "k1": r.bm25.k1, "b": r.bm25.b,
           "depth": r.eval.depth}

    def produce(out: Path) -> None:
        t0 = time.perf_counter()
        run = bm25_search(index.dir / "index", ds.queries, k=r.eval.depth, k1=r.bm25.k1, b=r.bm25.b)
        write_trec(run, out / "run.trec", tag=ctx.loaded.name)
        return {"queries": len(run), "search_seconds": round(time.perf_counter() - t0, 3)}

    return key, produce


METHODS: dict[str, Callable[[RunContext, Dataset], "tuple[dict, Callable]"]] = {"bm25": _bm25_run}


# ---- the run ---------------------------------------------------------------------------------------

def run_recipe(loaded: LoadedRecipe, runs_dir: Path, force: bool = False) -> dict[str, Any]:
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    recipe = loaded.recipe
    run_dir = Path(runs_dir) / loaded.name
    store = Store(Path(runs_dir), force=force)
    ctx = RunContext(loaded, store, run_dir)
    log.info("recipe %s (%s, hash %s) -> %s", loaded.name, loaded.path, loaded.hash[:12], run_dir)

    datasets = prepare_datasets(loaded)

    results: dict[str, dict[str, float]] = {}
    files: dict[str, dict[str, str]] = {}
    n_queries: dict[str, int] = {}
    for ds in datasets:
        key, produce = METHODS[recipe.method](ctx, ds)
        retrieve = store.stage(f"retrieve-{ds.slug}", {"method": recipe.method, **key}, scope=loaded.name)
        with retrieve.ensure() as out:
            if out is not None:
                retrieve.info.update(produce(out) or {})
        measures = list(recipe.eval.measures)
        evaluation = store.stage(f"eval-{ds.slug}", {"run": retrieve.hash, "topics": ds.topics_fingerprint(),
                                                    "measures": measures, "ir_measures":
                                                    package_versions().get("ir-measures")}, scope=loaded.name)
        with evaluation.ensure() as out:
            if out is not None:
                aggregate, per_query = evaluate(read_trec(retrieve.dir / "run.trec"), ds.qrels, measures)
                write_per_query(per_query, measures, out / "per_query.tsv")
                atomic_write_json(out / "metrics.json", {"dataset": ds.id, "queries": len(per_query),
                                                         "measures": aggregate})
                evaluation.info.update({"queries": len(per_query)})
        metrics = _read_json(evaluation.dir / "metrics.json")
        results[ds.id] = metrics["measures"]
        n_queries[ds.id] = metrics["queries"]
        files[ds.id] = {"run": str(retrieve.dir / "run.trec"), "per_query": str(evaluation.dir / "per_query.tsv")}
        log.info("result %s: %s", ds.id, "  ".join(f"{m} {v:.4f}" for m, v in metrics["measures"].items()))

    seconds = time.perf_counter() - t_start
    payload = {
        "recipe": loaded.name, "recipe_file": str(loaded.path), "recipe_hash": loaded.hash,
        "method": recipe.method, "description": recipe.description, "run_dir": str(run_dir),
        "results": results, "queries": n_queries, "files": files, "seconds": round(seconds, 3),
    }
    manifest = {
        "recipe": loaded.name, "recipe_file": str(loaded.path), "extends": [str(p) for p in loaded.files[1:]],
        "overrides": list(loaded.overrides), "recipe_hash": loaded.hash, "config": loaded.config,
        "inputs": {ds.id: {"source": ds.source, "corpus": ds.corpus_fingerprint(),
                           "topics": ds.topics_fingerprint()} for ds in datasets},
        "stages": [vars(r) for r in store.records],
        "environment": environment(),
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "timings": {"total_seconds": round(seconds, 3),
                    "stages": {f"{r.name}@{r.hash[:12]}": round(r.seconds, 3) for r in store.records}},
    }
    atomic_write_json(run_dir / "manifest.json", manifest)
    atomic_write_json(run_dir / "results.json", payload)
    return payload


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())
