"""Run a recipe: check every input, then build (or reuse) each stage, evaluate, and write the results.

The stages themselves, in pipeline order, are ``harness/stages/`` (bm25, groups, teacher, answer key,
student, index, retrieve, evaluate); :class:`harness.stages.graph.StageGraph` wires them from the recipe.

    runs/
      _shared/                         stages any recipe reuses, keyed by content:
        bm25-index-<hash>/             one Lucene index per corpus
        bm25-run-<hash>/               BM25 top-k per (queries, depth): candidates and negative pools
        groups-<hash>/                 training groups (positives + BM25 hard negatives)
        teacher-finetune-<hash>/       a cross-encoder fine-tuned here
        answer-key-<hash>/             teacher scores of every training pair (parquet)
        teacher-rerank-<hash>/         the teacher reranking BM25's top-k of an eval set
      <recipe>/
        manifest.json                  recipe hash, inputs' fingerprints, stages, versions, git, device, timings
        results.json                   {dataset: {measure: value}}, reference rows, where the files are
        retrieve-<dataset>-<hash>/run.trec
        eval-<dataset>-<hash>/per_query.tsv, metrics.json
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

from harness.artifacts import Store, atomic_write_json
from harness.artifacts.environment import environment
from harness.context import RunContext
from harness.data import Dataset, open_dataset
from harness.errors import DataError, ModelError
from harness.recipe import LoadedRecipe
from harness.stages import evaluate as _evaluate

log = logging.getLogger("harness")

def uses_teacher(recipe) -> bool:
    """A teacher reranking, or a student whose variant's targets come from ``[teacher]``."""
    if recipe.method == "rerank":
        return True
    from harness.registry import VARIANTS

    return recipe.method == "student" and VARIANTS[recipe.distill.variant].uses_teacher


_FIELD = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


def prepare(ctx: RunContext) -> list[Dataset]:
    """Open every dataset and resolve every model the recipe names: fails fast, before any compute.

    Every error names the recipe file (or ``--set``) that gave the field its value, then the field."""
    return _located(ctx, _prepare, ctx)


def _located(ctx: RunContext, fn: Callable, *args):
    """Call ``fn``; a data or model error gains the recipe file and field it came from."""
    try:
        return fn(*args)
    except (DataError, ModelError) as exc:
        msg = str(exc)
        head = msg.partition(":")[0]
        if _FIELD.match(head):  # "student.model: ..." (models name their field)
            where = head
        else:  # a dataset error starts with the dataset id
            train = ctx.recipe.train.dataset if ctx.recipe.method == "student" or fn is prepare_teacher else None
            where = "train.dataset" if head == train and head not in ctx.recipe.eval.datasets else "eval.datasets"
            msg = f"{where}: {msg}"
        raise type(exc)(f"{ctx.loaded.source_of(where)}: {msg}") from None


def _prepare(ctx: RunContext) -> list[Dataset]:
    recipe = ctx.recipe
    ev = recipe.eval
    out = []
    for spec in ev.datasets:
        ds = open_dataset(spec, max_queries=ev.max_queries, max_docs=ev.max_docs, on_problem=recipe.data.on_problem)
        ctx.warnings.extend(f"{spec}: {p}" for p in getattr(ds, "problems", []))
        if not ds.queries:
            raise DataError(f"{spec}: no judged queries (qrels and queries share no query id)")
        log.info("data   %s: %d judged queries (%s)", ds.id, len(ds.queries), ds.source)
        out.append(ds)
    if ev.dev:
        from harness.data import DatasetSlice

        dev = ctx.stages.dev_dataset()
        if dev is None:
            raise DataError("eval.dev: set, but train.dev_fraction is 0: there is no dev split to evaluate")
        if ev.max_queries or ev.max_docs:  # a CPU slice cuts the dev set like the others
            dev = DatasetSlice(dev, max_queries=ev.max_queries, max_docs=ev.max_docs)
        if not dev.queries:
            raise DataError(f"eval.dev: {dev.id} has no judged queries")
        log.info("data   %s: %d dev queries held out of %s (%s)", dev.id, len(dev.queries),
                 recipe.train.dataset, dev.source)
        out.append(dev)
    if uses_teacher(recipe):
        prepare_teacher(ctx, needs_training_data=recipe.method == "student" or (
            recipe.teacher.finetune.enabled and recipe.teacher.kind != "bi-encoder"))
    if recipe.method == "student":
        from harness.models import resolve_model

        if recipe.student.init_recipe:  # the recipe of the student this one starts from loads, before any work
            init = ctx.stages.recipe_graph(recipe.student.init_recipe, "student.init_recipe")
            resolve_model(init.recipe.student.model, "student.model")
        else:
            resolve_model(recipe.student.model, "student.model")
        from harness.distill.variants import variant_of

        variant_of(recipe).check(ctx)  # e.g. a self-distilled student's teacher recipe loads, same family
        if not uses_teacher(recipe):
            prepare_teacher_free_training(ctx)
    return out


def prepare_teacher_free_training(ctx: RunContext) -> None:
    train = ctx.stages.train_dataset()
    if not train.queries:
        raise DataError(f"{train.id}: no judged training queries")
    log.info("data   %s: %d training queries (%s)", train.id, len(train.queries), train.source)


def prepare_teacher(ctx: RunContext, needs_training_data: bool) -> None:
    from harness.stages.teacher import check_models, members

    check_models(ctx.recipe.teacher)
    if "student" in members(ctx.recipe.teacher):  # the recipe of the student that teaches loads, before any work
        from harness.models import resolve_model

        graph = ctx.stages.recipe_graph(ctx.recipe.teacher.student.recipe, "teacher.student.recipe")
        resolve_model(graph.recipe.student.model, "student.model")
    if needs_training_data:
        train = ctx.stages.train_dataset()
        if not train.queries:
            raise DataError(f"{train.id}: no judged training queries")
        log.info("data   %s: %d training queries (%s)", train.id, len(train.queries), train.source)


def prepare_datasets(loaded: LoadedRecipe) -> list[Dataset]:
    """The checks of :func:`prepare` without a run directory (``harness validate --data``)."""
    return prepare(RunContext(loaded, Store(Path("runs")), Path("runs") / loaded.name))


# ---- the answer key on its own ---------------------------------------------------------------------

def build_answer_key(loaded: LoadedRecipe, runs_dir: Path, force: bool = False) -> dict[str, Any]:
    """Build (or reuse) the recipe's answer key; returns where it is and what it holds."""
    store = Store(Path(runs_dir), force=force)
    ctx = RunContext(loaded, store, Path(runs_dir) / loaded.name)
    _located(ctx, prepare_teacher, ctx, True)
    stage = ctx.stages.answer_key()
    return {"recipe": loaded.name, "path": str(stage.dir / "answer_key.parquet"), "stage": str(stage.dir),
            "hash": stage.hash, "teacher": ctx.stages.teacher_key(), "info": stage.info,
            "reused": all(r.reused for r in store.records if r.name == "answer-key")}


# ---- the run ---------------------------------------------------------------------------------------

def run_recipe(loaded: LoadedRecipe, runs_dir: Path, force: bool = False,
               cache: "dict | None" = None, run_name: "str | None" = None) -> dict[str, Any]:
    """Run one recipe. ``cache`` (content-keyed: loaded teachers, students, groups) may be shared by the
    recipes of a suite, so a model is loaded, and a passage encoded by the teacher, once per process.
    ``run_name`` is the run directory under ``runs_dir`` (default: the recipe's name; one training seed of
    a multi-seed run is ``<name>/seed-<k>``)."""
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    recipe = loaded.recipe
    run_name = run_name or loaded.name
    run_dir = Path(runs_dir) / run_name
    store = Store(Path(runs_dir), force=force)
    ctx = RunContext(loaded, store, run_dir, cache=cache if cache is not None else {})
    log.info("recipe %s (%s, hash %s) -> %s", loaded.name, loaded.path, loaded.hash[:12], run_dir)

    datasets = prepare(ctx)

    results: dict[str, dict[str, float]] = {}
    files: dict[str, dict[str, str]] = {}
    n_queries: dict[str, int] = {}
    exact_results: dict[str, dict[str, float]] = {}
    figures: dict[str, dict[str, Any]] = {}
    graph = ctx.stages
    for ds in datasets:
        retrieve = graph.retrieve(ds)
        evaluation = graph.evaluate(ds, retrieve)
        metrics = _evaluate.metrics(evaluation)
        results[ds.id] = metrics["measures"]
        if "exact" in metrics:
            exact_results[ds.id] = metrics["exact"]
        n_queries[ds.id] = metrics["queries"]
        files[ds.id] = {"run": str(retrieve.dir / "run.trec"), "per_query": str(evaluation.dir / "per_query.tsv")}
        figures[ds.id] = {**_index_figures(store, retrieve), **retrieve.info}
        log.info("result %s: %s", ds.id, "  ".join(f"{m} {v:.4f}" for m, v in metrics["measures"].items()))

    reference = None
    if uses_teacher(recipe) and recipe.teacher.check:
        reference = graph.teacher_reference(datasets)
    training = None
    if recipe.method == "student":  # this run's own student (a self-distilled run also uses its teacher's)
        own = graph.student().hash
        training = next((r.info for r in store.records if r.hash == own and r.info), None)

    seconds = time.perf_counter() - t_start
    # build time of every stage the run needs, whenever each was built (a later invocation that only reuses
    # them does not erase it), keyed by where the stage lives: a run-scoped stage two runs build counts twice
    stage_seconds = {f"{Path(r.dir).parent.name}/{Path(r.dir).name}": round(r.built_seconds, 3)
                     for r in store.records}
    payload = {
        "recipe": loaded.name, "recipe_file": str(loaded.path), "recipe_hash": loaded.hash,
        "method": recipe.method, "description": recipe.description, "run_dir": str(run_dir),
        "train_seed": recipe.train.seed,
        "results": results, "queries": n_queries, "files": files, "seconds": round(seconds, 3),
        "compute_seconds": round(sum(stage_seconds.values()), 3), "stage_seconds": stage_seconds,
        "warnings": ctx.warnings, "figures": figures,
    }
    if exact_results:
        payload["exact"] = exact_results
    if training is not None:
        payload["training"] = training
    if reference is not None:
        payload["reference"] = reference
    stage_info = {f"{r.name}@{r.hash[:12]}": r.info for r in store.records if r.info}
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
        "stage_info": stage_info,
        "warnings": ctx.warnings,
    }
    from harness import distributed

    if distributed.is_main():  # under torchrun, rank 0 writes
        atomic_write_json(run_dir / "manifest.json", manifest)
        atomic_write_json(run_dir / "results.json", payload)
        if recipe.method == "student":  # the student's model card, from this run (harness export ships it)
            from harness.artifacts.store import atomic_write_text
            from harness.report.export import model_card, student_dir

            atomic_write_text(run_dir / "model_card.md", model_card(payload, manifest, str(student_dir(manifest))))
    return payload


def _index_figures(store: Store, retrieve) -> dict[str, Any]:
    """Figures of the index stage this run's retrieval used (size, encoding speed, sparsity)."""
    index_hash = retrieve.key.get("index")
    for r in store.records:
        if r.hash == index_hash:
            return {k: v for k, v in r.info.items() if k not in ("from",)}
    return {}


