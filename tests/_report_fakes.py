"""Small, fully deterministic run directories for the report tests (tables, plots, leaderboards, browser).

They have the layout a real run leaves (results.json, manifest.json, eval-*/per_query.tsv, _shared stage
folders with train_log.jsonl) but every path inside them is written as if the runs had been made on
another machine (``/elsewhere/machine-a/runs``), so reading them also exercises the re-rooting of paths.
"""

from __future__ import annotations

import json
from pathlib import Path

FOREIGN_ROOT = "/elsewhere/machine-a/runs"
TOY, TOY2 = "toy/test", "toy2/test"
MEASURES = ["nDCG@10", "R@100"]


def _base(i: int) -> dict[str, float]:
    return {"nDCG@10": 0.30 + 0.02 * (i % 10), "R@100": 0.60 + 0.01 * (i % 5)}


def per_query_values() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{recipe: {dataset: {qid: {measure: value}}}}, rounded as per_query.tsv stores them."""
    out: dict = {"bm25-toy": {TOY: {}, TOY2: {}}, "splade-toy": {TOY: {}, TOY2: {}}, "colbert-toy": {TOY: {}}}
    for i in range(1, 25):
        q = f"q{i:02d}"
        b = _base(i)
        out["bm25-toy"][TOY][q] = b
        out["splade-toy"][TOY][q] = {"nDCG@10": b["nDCG@10"] + 0.03 + 0.04 * ((i % 3) - 1),  # better
                                     "R@100": b["R@100"] + (0.02 if i % 2 else -0.02)}  # no difference
        out["colbert-toy"][TOY][q] = {"nDCG@10": b["nDCG@10"] + (0.05 if i % 2 else -0.05) + 0.005,  # noise
                                      "R@100": b["R@100"] + 0.03 + 0.02 * ((i % 4) - 1.5)}  # better
    for i in range(1, 11):
        q = f"d{i:02d}"
        out["bm25-toy"][TOY2][q] = {"nDCG@10": 0.5 + 0.03 * (i % 4), "R@100": 0.8}
        out["splade-toy"][TOY2][q] = {"nDCG@10": 0.5 + 0.03 * (i % 4) - 0.01 * (i % 2), "R@100": 0.82}
    return {r: {ds: {q: {m: round(v, 6) for m, v in vals.items()} for q, vals in qs.items()}
                for ds, qs in by_ds.items()} for r, by_ds in out.items()}


FIGURES = {
    "bm25-toy": {},
    "splade-toy": {"documents": 200, "avg_doc_terms": 178.5, "index_bytes": 162281, "latency_ms_p50": 12.5,
                   "latency_ms_p95": 27.2, "avg_query_terms": 40.8, "docs_per_second": 5.1},
    "colbert-toy": {"documents": 200, "bytes_per_token": 99.1, "index_bytes": 2270617, "latency_ms_p50": 95.0,
                    "latency_ms_p95": 300.0, "docs_per_second": 16.6},
}
TRAINING = {"splade-toy": {"steps": 30, "train_seconds": 64.4, "loss": "mse"},
            "colbert-toy": {"steps": 30, "train_seconds": 1234.0, "loss": "margin-mse"}}
METHOD = {"bm25-toy": "bm25", "splade-toy": "student", "colbert-toy": "student"}


def write_run(root: Path, recipe: str, values: dict[str, dict[str, dict[str, float]]],
              figures: "dict | None" = None, training: "dict | None" = None, method: str = "student",
              recipe_file: "str | None" = None, foreign: bool = True, reverse_rows: bool = False,
              finished: str = "2026-01-02T03:04:05+0000", variant: "str | None" = None) -> Path:
    """One run directory ``root/recipe`` written the way the pipeline writes it (a student's family is the
    recipe name's first word; ``variant`` its distillation variant, static by default)."""
    root = Path(root)
    run_dir = root / recipe
    recorded_root = Path(FOREIGN_ROOT) if foreign else root
    recorded_dir = recorded_root / recipe
    results, files, queries, figs = {}, {}, {}, {}
    for ds, per_q in values.items():
        slug = ds.replace("/", "-")
        eval_dir = run_dir / f"eval-{slug}-0123456789ab"
        eval_dir.mkdir(parents=True, exist_ok=True)
        rows = list(per_q.items())
        if reverse_rows:
            rows.reverse()
        measures = list(next(iter(per_q.values())))
        lines = ["query_id\t" + "\t".join(measures)]
        lines += [q + "\t" + "\t".join(f"{v[m]:.6f}" for m in measures) for q, v in rows]
        (eval_dir / "per_query.tsv").write_text("\n".join(lines) + "\n")
        results[ds] = {m: sum(v[m] for v in per_q.values()) / len(per_q) for m in measures}
        queries[ds] = len(per_q)
        files[ds] = {"run": str(recorded_dir / f"retrieve-{slug}-ba9876543210" / "run.trec"),
                     "per_query": str(recorded_dir / eval_dir.name / "per_query.tsv")}
        figs[ds] = dict(figures or {})
    stages = []
    if training is not None:
        family = recipe.split("-")[0]
        student_dir = root / "_shared" / f"student-{family}-{recipe[:6]}"
        student_dir.mkdir(parents=True, exist_ok=True)
        steps = int(training.get("steps", 30))
        with open(student_dir / "train_log.jsonl", "w") as fh:
            for s in range(1, steps + 1):
                fh.write(json.dumps({"step": s, "loss": round(5.0 / s + 0.1 * (s % 3), 4), "lr": 1e-5}) + "\n")
        stages += [
            {"name": "answer-key", "hash": "a" * 64, "dir": str(recorded_root / "_shared" / "answer-key-aaaaaaaaaaaa"),
             "reused": True, "seconds": 0.1, "info": {"pairs": 64, "queries": 16}},
            {"name": f"student-{family}", "hash": "b" * 64, "dir": str(recorded_root / "_shared" / student_dir.name),
             "reused": False, "seconds": training.get("train_seconds", 1.0), "info": dict(training)},
        ]
    payload = {
        "recipe": recipe, "recipe_file": recipe_file or f"/elsewhere/checkout/recipes/toy/{recipe}.toml",
        "recipe_hash": "0" * 64, "method": method, "description": f"{recipe} (fake run for tests)",
        "run_dir": str(recorded_dir), "results": results, "queries": queries, "files": files, "seconds": 1.0,
        # every fake run needs one shared stage (2 s to build) and one of its own (1 s)
        "compute_seconds": 3.0, "stage_seconds": {"_shared/bm25-index-5a4ed0000000": 2.0, f"{recipe}/eval-0123456789ab": 1.0},
        "warnings": [], "figures": figs,
    }
    if training is not None:
        payload["training"] = dict(training)
    config = {"method": method}
    if method == "student":
        config.update(student={"family": recipe.split("-")[0]}, distill={"variant": variant or "static"})
    manifest = {"recipe": recipe, "overrides": [], "stages": stages, "finished": finished, "config": config}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2))  # last, as the pipeline does
    return run_dir


def make_fake_runs(root: Path, datasets: "list[str] | None" = None) -> Path:
    """bm25-toy (baseline), splade-toy (better on nDCG@10), colbert-toy (better on R@100) under ``root``."""
    values = per_query_values()
    for recipe in ("bm25-toy", "splade-toy", "colbert-toy"):
        vals = {ds: v for ds, v in values[recipe].items() if datasets is None or ds in datasets}
        write_run(root, recipe, vals, FIGURES[recipe], TRAINING.get(recipe), METHOD[recipe],
                  reverse_rows=recipe == "colbert-toy")
    return Path(root)


def dense_variant_values() -> dict[str, dict[str, dict[str, float]]]:
    """{variant: {qid: {"nDCG@10": v}}} for 40 queries: static and online tie (the same values, shifted on
    alternate queries: no difference on average), both clearly above untrained (+0.10 on every query, give or
    take 0.02)."""
    out: dict = {"static": {}, "online": {}, "untrained": {}}
    for i in range(40):
        q, base = f"q{i:02d}", 0.3 + 0.01 * (i % 7)
        out["untrained"][q] = {"nDCG@10": round(base, 6)}
        out["static"][q] = {"nDCG@10": round(base + 0.10 + 0.02 * ((i % 3) - 1), 6)}
        out["online"][q] = {"nDCG@10": round(base + 0.10 + (0.01 if i % 2 else -0.01), 6)}
    return out


def make_dense_variants(root: Path) -> Path:
    """dense-static, dense-online and dense-untrained runs on TOY (see :func:`dense_variant_values`)."""
    for variant, values in dense_variant_values().items():
        write_run(root, f"dense-{variant}", {TOY: values}, variant="none" if variant == "untrained" else variant)
    return Path(root)
