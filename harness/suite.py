"""Run every recipe of a folder (a suite) in one process, so they share stages and loaded models.

    harness suite recipes/scifact [--set k=v]... [--only PATTERN] [--json]

Recipes run in name order, except that a recipe runs after the recipes whose trained students it reads: a
self-distillation recipe after the recipe that trains its teacher, a recipe taught by a student
(``teacher.student.recipe``) after the recipe that trains that student. A failing recipe is reported and the
suite goes on; the exit status is 1 if any failed. Each recipe writes its own results.json (see
:mod:`harness.pipeline`); the suite adds ``suite-<name>.json`` beside the run directories with per-recipe wall
times and ``cold_cache_seconds``: every stage the suite needs, each built once, as long as their builds took
whenever they ran (what the suite costs from an empty cache; a second invocation that reuses everything takes
seconds but reports the same figure).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from pathlib import Path
from typing import Any

from harness.artifacts import atomic_write_json, cold_cache_seconds, time_by_stage_kind
from harness.errors import HarnessError, RecipeError
from harness.recipe import LoadedRecipe, find_recipe, load_recipe

log = logging.getLogger("harness")


def suite_recipes(folder: "str | Path", overrides=(), only: "str | None" = None) -> list[LoadedRecipe]:
    """All recipes of ``folder`` (a path, or a shipped folder such as ``scifact``), validated up front."""
    root = Path(folder)
    if not root.is_dir():
        from harness.recipe.loader import SHIPPED

        root = SHIPPED / str(folder)
    if not root.is_dir():
        raise RecipeError([f"{folder}: no such recipe folder"])
    files = sorted(p for p in root.glob("*.toml") if not p.name.endswith(".expect.toml") and not p.name.startswith("_"))
    if only:
        patterns = [x.strip() for x in only.split(",") if x.strip()]  # "dense-*,bm25": any of them
        files = [p for p in files if any(fnmatch.fnmatch(p.stem, pat) for pat in patterns)]
    if not files:
        raise RecipeError([f"{root}: no recipes{' matching ' + only if only else ''}"])
    problems, loaded = [], []
    for p in files:
        try:
            loaded.append(load_recipe(p, list(overrides)))
        except RecipeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RecipeError(problems)
    names = [x.name for x in loaded]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RecipeError([f"{root}: recipes share a name (and would share a run directory): {', '.join(sorted(dupes))}"])
    # a recipe after the recipes whose students it reads: a self-distilled student's teacher, a student that
    # teaches (chains too: a self-distilled student of a student taught by another recipe's student)
    from harness.stages.graph import needed_recipes

    by_path = {find_recipe(x.path).resolve(): x for x in loaded}
    depths: dict[str, int] = {}

    def depth(x: LoadedRecipe, seen: tuple = ()) -> int:
        if x.name not in depths:
            d = 0
            for spec in needed_recipes(x.recipe):
                try:
                    first = by_path.get(find_recipe(spec).resolve())
                except RecipeError:
                    first = None
                d = max(d, 1 if first is None or first.name in seen else 1 + depth(first, (*seen, x.name)))
            depths[x.name] = d
        return depths[x.name]

    return sorted(loaded, key=lambda x: (depth(x), x.name))


def _row(payload: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {"seconds": round(seconds, 1), "run_dir": payload["run_dir"], "compute_seconds": payload["compute_seconds"],
            "results": payload["results"],
            **({"std": payload["std"], "seeds": payload["seeds"]["n"]} if "std" in payload else {})}


def run_suite(folder, runs_dir: Path, overrides=(), only=None, force: bool = False, seeds: int = 1,
              executor: "str | None" = None, workers: int = 2, slurm: "dict | None" = None) -> dict[str, Any]:
    """Run every recipe of ``folder``; ``seeds`` > 1 trains each student that many times (see harness.seeds).
    ``executor`` ("local", "slurm"): one job per recipe through submitit (:mod:`harness.cluster`) instead of
    one process."""
    recipes = suite_recipes(folder, overrides, only)
    log.info("suite %s: %d recipes: %s", folder, len(recipes), ", ".join(r.name for r in recipes))
    t0 = time.perf_counter()
    out: dict[str, Any] = {"suite": str(folder), "overrides": list(overrides), "seeds": seeds, "recipes": {},
                           "failed": {}}
    payloads: list[dict[str, Any]] = []
    if executor:
        from harness.cluster import execute

        results, failed, seconds = execute(recipes, Path(runs_dir), overrides, executor, workers, force, seeds, slurm)
        out["executor"] = {"kind": executor, **({"workers": workers} if executor == "local" else {}),
                           "job_seconds": seconds}
        for loaded in recipes:
            if loaded.name in results:
                out["recipes"][loaded.name] = _row(results[loaded.name], seconds[loaded.name])
                payloads.append(results[loaded.name])
        out["failed"] = failed
    else:
        from harness.pipeline import run_recipe
        from harness.seeds import run_seeds

        cache: dict = {}  # content-keyed: teachers, students, groups loaded once for the whole suite
        for loaded in recipes:
            t1 = time.perf_counter()
            try:
                if seeds > 1:
                    payload = run_seeds(str(loaded.path), overrides, runs_dir, seeds, force=force, cache=cache)
                else:
                    payload = run_recipe(loaded, runs_dir, force=force, cache=cache)
                out["recipes"][loaded.name] = _row(payload, time.perf_counter() - t1)
                payloads.append(payload)
            except HarnessError as exc:
                log.error("suite: %s failed: %s", loaded.name, exc)
                out["failed"][loaded.name] = str(exc)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["cold_cache_seconds"] = round(cold_cache_seconds(payloads), 1)  # every stage once, whenever it was built
    out["time_by_stage"] = [{"stage": k, "seconds": sec, "count": n} for k, sec, n in time_by_stage_kind(payloads)]
    name = Path(str(folder)).name or "suite"
    atomic_write_json(Path(runs_dir) / f"suite-{name}.json", out)
    return out
