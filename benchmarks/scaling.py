"""How cost grows with the corpus: encoding, index build, index size, query latency and peak RSS per
family at several corpus sizes, with the fitted exponent of each (cost ∝ passages^b; linear is b = 1).

    python benchmarks/scaling.py [--sizes 5000,20000,50000,200000] [--family all] [--max-len 256]
                                 [--queries 50] [--plot scaling.png]

The corpora are assembled from the real collections' passages in $HARNESS_DATA_DIR (SciFact, Cranfield,
CISI, Medline, ADI, the MS MARCO sample: 9,304 passages, repeated under new ids beyond that — they are for
time and memory only, not for effectiveness). Each (family, size) runs in its own process through the
harness's streaming index stage (:func:`harness.index.students.index_corpus`), so its peak RSS is its own.
The untrained students are measured (training does not change these costs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, report

COLLECTIONS = ["scifact", "cranfield", "cisi", "medline", "adi", "msmarco-sample"]


def passages(n: int):
    """``n`` (id, text) pairs from the real collections, cycled under fresh ids."""
    from harness.data import open_dataset

    pool = []
    for name in COLLECTIONS:
        try:
            pool.extend(d.contents(["title", "text"]) for d in open_dataset(name).docs())
        except Exception:  # a collection missing from this machine: the others suffice
            continue
    return ((f"p{i}", pool[i % len(pool)]) for i in range(n))


def worker(family: str, size: int, max_len: int, n_queries: int, out: str) -> None:
    """One measurement, in this process: index ``size`` passages, time queries, report peak RSS."""
    import resource
    import tempfile
    import time
    from pathlib import Path

    from harness.index.students import index_corpus, search_corpus
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings

    recipe = load_recipe(f"scifact/{family}-untrained").recipe
    calibration = [t for _, t in passages(64)]
    student = build_student(family, resolve_model("minilm"), student_settings(recipe), calibration)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = index_corpus(family, student, passages(size), Path(tmp), recipe.index, max_len, True)
        build = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        queries = {f"q{i}": t[:200] for i, (_, t) in enumerate(passages(n_queries))}
        _, _, figures = search_corpus(family, student, Path(tmp), queries, 100, recipe.index, False, 32, True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(out).write_text(json.dumps({
        "family": family, "passages": size, "encode_seconds": info["encode_seconds"],
        "index_seconds": round(build - info["encode_seconds"], 2), "index_bytes": disk,
        "latency_ms_p50": figures.get("latency_ms_p50"), "peak_rss_bytes": rss,
        "rss_per_1k_passages_mb": round(rss / size * 1000 / 2**20, 2)}))



def fit(xs, ys) -> "float | None":
    """The exponent b of y = a·x^b (least squares in log-log)."""
    import numpy as np

    pts = [(x, y) for x, y in zip(xs, ys) if x and y]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return round(float(np.polyfit(lx, ly, 1)[0]), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000,20000,50000,200000")
    ap.add_argument("--family", default="all", choices=["all", "dense", "splade", "colbert"])
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--plot", default="")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")
    if args.worker:
        family, size, max_len, n_queries, out = args.worker
        worker(family, int(size), int(max_len), int(n_queries), out)
        return
    import tempfile

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for family in (["dense", "splade", "colbert"] if args.family == "all" else [args.family]):
        for size in sizes:
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                subprocess.run([sys.executable, __file__, "--worker", family, str(size), str(args.max_len),
                                str(args.queries), fh.name], check=True, cwd=ROOT)
                row = json.loads(open(fh.name).read())
            rows.append(row)
            print(json.dumps(row))
    table = ["| family | passages | encode s | index s | index MB | p50 ms | peak RSS MB | RSS MB / 1k passages |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    exponents = {}
    for r in rows:
        table.append(f"| {r['family']} | {r['passages']:,} | {r['encode_seconds']:.1f} | {r['index_seconds']:.1f} | "
                     f"{r['index_bytes'] / 2**20:.1f} | {r['latency_ms_p50']} | {r['peak_rss_bytes'] / 2**20:.0f} | "
                     f"{r['rss_per_1k_passages_mb']} |")
    for family in sorted({r["family"] for r in rows}):
        fam = [r for r in rows if r["family"] == family]
        xs = [r["passages"] for r in fam]
        exponents[family] = {k: fit(xs, [r[k] for r in fam]) for k in
                             ("encode_seconds", "index_seconds", "index_bytes", "latency_ms_p50", "peak_rss_bytes")}
    print("\n".join(table))
    print("exponents (cost ∝ passages^b):", json.dumps(exponents))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
        for ax, key, label in zip(axes, ("encode_seconds", "index_bytes", "peak_rss_bytes"),
                                  ("encoding (s)", "index size (bytes)", "peak RSS (bytes)")):
            for family in sorted({r["family"] for r in rows}):
                fam = [r for r in rows if r["family"] == family]
                ax.loglog([r["passages"] for r in fam], [r[key] for r in fam], "o-", label=family)
            ax.set_xlabel("passages")
            ax.set_title(label)
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    worst = max((b for e in exponents.values() for b in (e["encode_seconds"], e["index_bytes"]) if b), default=1.0)
    report("scaling", worst, 1.15, higher_is_better=False, rows=rows, exponents=exponents)


if __name__ == "__main__":
    main()
