"""Training seeds: run one recipe N times with different training seeds and aggregate the runs.

    harness run scifact/dense-static --seeds 3
    runs/scifact-dense-static/
      seed-0/ seed-1/ seed-2/        one full run each (results.json, manifest.json, retrieve-*, eval-*)
      seeds/per_query-<dataset>.tsv  per-query values averaged over the seeds (what significance tests use)
      results.json                   the aggregate: mean per cell, ``std`` (sample, n - 1) and ``seeds``

Seed k sets ``train.seed = s0 + k`` (s0: the recipe's own ``train.seed``), which changes what training
draws (new heads, data order, dropout, sampling inside the step) and nothing else: BM25, the negative pools,
the teacher and its answer key are stages shared by every seed and built once. A self-distilled student's
seed k is taught by its teacher recipe's seed k. The aggregate ``results.json`` reads like any run's, so
tables, leaderboards and the gate take it as they are; its ``seeds`` field keeps each seed's figures.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Sequence

from harness.artifacts import atomic_write_json

log = logging.getLogger("harness")

SEEDS_DIR = "seeds"


def seed_run_name(name: str, k: int) -> str:
    return f"{name}/seed-{k}"


def _slug(dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def mean_per_query(per_seed: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{query: {measure: mean over seeds}} on the queries (and measures) every seed evaluated."""
    if not per_seed:
        return {}
    common = [q for q in per_seed[0] if all(q in s for s in per_seed[1:])]
    out = {}
    for q in common:
        measures = [m for m in per_seed[0][q] if all(m in s[q] for s in per_seed[1:])]
        out[q] = {m: math.fsum(s[q][m] for s in per_seed) / len(per_seed) for m in measures}
    return out


def aggregate(payloads: Sequence[dict[str, Any]], run_dir: Path, name: str) -> dict[str, Any]:
    """The aggregate ``results.json`` payload of the seed runs ``payloads`` (written under ``run_dir``)."""
    from harness.evaluate import read_per_query, write_per_query

    first = payloads[0]
    results: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    files: dict[str, dict[str, str]] = {}
    queries: dict[str, int] = {}
    datasets = [ds for ds in first["results"] if all(ds in p["results"] for p in payloads[1:])]
    for ds in datasets:
        measures = [m for m in first["results"][ds] if all(m in p["results"][ds] for p in payloads[1:])]
        results[ds], std[ds] = {}, {}
        for m in measures:
            results[ds][m], std[ds][m] = mean_std([float(p["results"][ds][m]) for p in payloads])
        per_query = mean_per_query([read_per_query(p["files"][ds]["per_query"]) for p in payloads])
        path = run_dir / SEEDS_DIR / f"per_query-{_slug(ds)}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_per_query(per_query, measures, path)
        files[ds] = {"per_query": str(path), "runs": [p["files"][ds]["run"] for p in payloads]}
        queries[ds] = len(per_query)
    stage_seconds: dict[str, float] = {}
    for p in payloads:
        stage_seconds.update(p.get("stage_seconds") or {})
    training = dict(first.get("training") or {})
    train_seconds = [p["training"]["train_seconds"] for p in payloads
                     if isinstance((p.get("training") or {}).get("train_seconds"), (int, float))]
    if train_seconds:
        training["train_seconds"], training["train_seconds_std"] = mean_std(train_seconds)
    out = {
        "recipe": name, "recipe_file": first.get("recipe_file"), "recipe_hash": first.get("recipe_hash"),
        "method": first.get("method"), "description": first.get("description"), "run_dir": str(run_dir),
        "results": results, "std": std, "queries": queries, "files": files,
        "seeds": {"n": len(payloads), "train_seeds": [p.get("train_seed", 0) for p in payloads],
                  "runs": [p["run_dir"] for p in payloads],
                  "results": [{ds: p["results"][ds] for ds in datasets} for p in payloads]},
        "seconds": round(sum(float(p.get("seconds", 0.0)) for p in payloads), 3),
        "compute_seconds": round(sum(stage_seconds.values()), 3), "stage_seconds": stage_seconds,
        "warnings": list(dict.fromkeys(w for p in payloads for w in p.get("warnings", []))),
        "figures": first.get("figures", {}),
    }
    if training:
        out["training"] = training
    for k in ("reference", "exact"):
        if k in first:
            out[k] = first[k]
    return out


def run_seeds(spec: str, overrides: Sequence[str], runs_dir: Path, n: int, force: bool = False,
              cache: "dict | None" = None) -> dict[str, Any]:
    """Run recipe ``spec`` with ``n`` training seeds (one run directory each), then write the aggregate."""
    from harness.pipeline import run_recipe
    from harness.recipe import load_recipe

    base = load_recipe(spec, list(overrides))
    if base.recipe.method != "student":
        log.info("seeds: %s trains nothing (method %s): one run", base.name, base.recipe.method)
        return run_recipe(base, runs_dir, force=force, cache=cache)
    s0 = base.recipe.train.seed
    loaded = [load_recipe(spec, [*overrides, f"train.seed={s0 + k}"]) for k in range(n)]  # all checked first
    cache = cache if cache is not None else {}
    payloads = []
    for k, lk in enumerate(loaded):
        log.info("seeds: %s seed %d of %d (train.seed = %d)", base.name, k + 1, n, s0 + k)
        payloads.append(run_recipe(lk, runs_dir, force=force, cache=cache, run_name=seed_run_name(base.name, k)))
    run_dir = Path(runs_dir) / base.name
    out = aggregate(payloads, run_dir, base.name)
    first = _first_manifest(payloads[0])
    manifest = {"recipe": base.name, "recipe_file": str(base.path), "overrides": list(base.overrides),
                "config": first.get("config"), "seeds": out["seeds"], "stages": first.get("stages", []),
                "finished": max(str(_first_manifest(p).get("finished", "")) for p in payloads)}
    from harness import distributed

    if distributed.is_main():  # under torchrun, rank 0 writes
        atomic_write_json(run_dir / "manifest.json", manifest)
        atomic_write_json(run_dir / "results.json", out)
    for ds, values in out["results"].items():
        log.info("result %s over %d seeds: %s", ds, n, "  ".join(
            f"{m} {v:.4f} ± {out['std'][ds][m]:.4f}" for m, v in values.items()))
    return out


def _first_manifest(payload: dict[str, Any]) -> dict[str, Any]:
    import json

    path = Path(payload["run_dir"]) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
