"""How cost grows with the corpus: encoding, index build, index size, query latency and peak RSS per
family at several corpus sizes, with the fitted exponent of each (cost ∝ passages^b; linear is b = 1).

    python benchmarks/scaling.py [--sizes 5000,20000,50000,200000] [--family all] [--max-len 256]
                                 [--queries 50] [--plot scaling.png]

The corpora are assembled from the real collections' passages in $HARNESS_DATA_DIR (SciFact, Cranfield,
CISI, Medline, ADI, the MS MARCO sample: 9,304 passages, repeated under new ids beyond that — they are for
time and memory only, not for effectiveness). Each (family, size) runs in its own process through the
harness's streaming index stage (:func:`harness.index.students.index_corpus`), so its peak RSS is its own.
The untrained students are measured (training does not change the compute costs), except where
``--student FAMILY=DIR`` names a trained student folder (``RUNS/_shared/student-*/model``): a learned-sparse
index's size, build time and latency depend on how many terms a passage activates, and an untrained SPLADE
head activates thousands, so SPLADE's rows are only representative with a trained student. The indexes use the
shipped settings (ColBERT: PLAID at colbert-static-plaid's dev-chosen search settings), and beside each index's
one-query latency the exhaustive search's (10 queries) shows where the index starts to pay for itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import ROOT, machine, report

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


def worker(family: str, size: int, max_len: int, n_queries: int, out: str, trained: str = "") -> None:
    """One measurement, in this process: index ``size`` passages, time queries, report peak RSS."""
    import resource
    import tempfile
    import time
    from dataclasses import replace
    from pathlib import Path

    from harness.index.students import index_corpus, search_corpus
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings
    from harness.students.shapes import PAD_MULTIPLE

    recipe = load_recipe(f"scifact/{family}-untrained").recipe
    # the index settings the suite ships (ColBERT: PLAID at the dev-chosen colbert-static-plaid settings)
    index_cfg = load_recipe("scifact/colbert-static-plaid").recipe.index if family == "colbert" else recipe.index
    calibration = [t for _, t in passages(64)]
    if trained:
        from harness.students import load_student

        student = load_student(Path(trained))
        if student.family != family:
            raise SystemExit(f"scaling: --student {family}={trained} is a {student.family} student")
    else:
        student = build_student(family, resolve_model("minilm"), student_settings(recipe), calibration)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = index_corpus(family, student, passages(size), Path(tmp), index_cfg, max_len, True)
        build = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        queries = {f"q{i}": t[:200] for i, (_, t) in enumerate(passages(n_queries))}
        _, _, figures = search_corpus(family, student, Path(tmp), queries, 100, index_cfg, False, 32, True)
        # exhaustive search one query at a time beside the index's (where an index stops paying for itself)
        few = dict(list(queries.items())[:10])
        _, _, exact = search_corpus(family, student, Path(tmp), few, 100, replace(index_cfg, latency_queries=10),
                                    False, 32, False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(out).write_text(json.dumps({
        "family": family, "passages": size, "encode_seconds": info["encode_seconds"],
        "index_seconds": round(build - info["encode_seconds"], 2), "index_bytes": disk,
        "latency_ms_p50": figures.get("latency_ms_p50"), "exact_latency_ms_p50": exact.get("latency_ms_p50"),
        "peak_rss_bytes": rss, "student": trained or "untrained", "pad_multiple": PAD_MULTIPLE,
        "rss_per_1k_passages_mb": round(rss / size * 1000 / 2**20, 2), "machine": machine_label(machine())}))


UNRECORDED = "machine not recorded"


def machine_label(m: dict) -> str:
    """Which machine measured a row: its CPU and cores (and GPU): rows of different machines are never fitted
    together, nor does one machine's row stand in for another's (a 3-5x difference in speed between two 2-core
    CPUs was measured: AMX bf16 against AVX2 fp32)."""
    label = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"
    return label + (f", {m['gpu']}" if m.get("gpu") else "")


def row_machine(row: dict) -> str:
    return row.get("machine") or UNRECORDED



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
    ap.add_argument("--rows", type=Path, default=None,
                    help="a JSON-lines file of measured rows, read and appended to: a (family, size, max-len) "
                         "already in it is not measured again, and the table and exponents use every row in it "
                         "(a 200k-passage measurement takes ~75 min a family on 2 cores: spread it over runs)")
    ap.add_argument("--student", action="append", default=[], metavar="FAMILY=DIR",
                    help="measure FAMILY with the trained student saved in DIR instead of the untrained one "
                         "(needed for SPLADE: its index costs follow the trained model's sparsity)")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")
    if args.worker:
        family, size, max_len, n_queries, out, trained = args.worker
        worker(family, int(size), int(max_len), int(n_queries), out, trained)
        return
    import tempfile

    sizes = [int(s) for s in args.sizes.split(",")]
    trained = {}
    for spec in args.student:
        fam, sep, where = spec.partition("=")
        if not sep or fam not in ("dense", "splade", "colbert") or not Path(where).is_dir():
            ap.error(f"--student {spec!r}: expected FAMILY=DIR with FAMILY dense|splade|colbert and DIR a student folder")
        trained[fam] = str(Path(where).resolve())
    kept = []
    if args.rows is not None and args.rows.is_file():
        kept = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    here = machine_label(machine())
    done = {(r["family"], r["passages"], r.get("max_len", args.max_len), row_machine(r)) for r in kept}
    rows = [r for r in kept if r.get("max_len", args.max_len) == args.max_len]
    for family in (["dense", "splade", "colbert"] if args.family == "all" else [args.family]):
        for size in sizes:
            if (family, size, args.max_len, here) in done:
                print(f"kept from {args.rows}: {family} at {size:,} passages (measured on {here})")
                continue
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                subprocess.run([sys.executable, __file__, "--worker", family, str(size), str(args.max_len),
                                str(args.queries), fh.name, trained.get(family, "")], check=True, cwd=ROOT)
                row = {**json.loads(open(fh.name).read()), "max_len": args.max_len}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.rows is not None:
                with args.rows.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    rows.sort(key=lambda r: (row_machine(r), ["dense", "splade", "colbert"].index(r["family"]), r["passages"]))
    # one fit per family and machine: a curve through two machines' rows measures the machines, not the growth
    machines = sorted({row_machine(r) for r in rows})
    groups = {}
    for r in rows:
        key = r["family"] if len(machines) == 1 else f"{r['family']} ({row_machine(r)})"
        groups.setdefault(key, []).append(r)
    many = len(machines) > 1
    table = ["| " + ("machine | " if many else "") + "family | passages | encode s | index s | index MB | p50 ms | "
             "exact p50 ms | peak RSS MB | RSS MB / 1k passages |",
             "|" + ("---|" if many else "") + "---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    exponents = {}
    for r in rows:
        table.append("| " + (f"{row_machine(r)} | " if many else "") +
                     f"{r['family']} | {r['passages']:,} | {r['encode_seconds']:.1f} | {r['index_seconds']:.1f} | "
                     f"{r['index_bytes'] / 2**20:.1f} | {r['latency_ms_p50']} | {r.get('exact_latency_ms_p50', '–')} | "
                     f"{r['peak_rss_bytes'] / 2**20:.0f} | "
                     f"{r['rss_per_1k_passages_mb']} |")
    for family, fam in sorted(groups.items()):
        xs = [r["passages"] for r in fam]
        exponents[family] = {k: fit(xs, [r[k] for r in fam]) for k in
                             ("encode_seconds", "index_seconds", "index_bytes", "latency_ms_p50", "peak_rss_bytes")}
    marginal = {}  # streaming: what each further 1k passages adds to peak RSS (the slope of the line through it)
    for family, fam in sorted(groups.items()):
        if len({r["passages"] for r in fam}) >= 2:
            import numpy as np

            slope, icpt = np.polyfit([r["passages"] for r in fam], [r["peak_rss_bytes"] for r in fam], 1)
            marginal[family] = {"rss_mb_per_1k_passages": round(float(slope) * 1000 / 2**20, 3),
                                "rss_mb_at_zero": round(float(icpt) / 2**20)}
    print("\n".join(table))
    print("exponents (cost ∝ passages^b):", json.dumps(exponents))
    print("peak RSS, the line through it (MB at zero passages + MB per 1k passages):", json.dumps(marginal))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
        for ax, key, label in zip(axes, ("encode_seconds", "index_bytes", "peak_rss_bytes"),
                                  ("encoding (s)", "index size (bytes)", "peak RSS (bytes)")):
            for family, fam in sorted(groups.items()):
                ax.loglog([r["passages"] for r in fam], [r[key] for r in fam], "o-", label=family)
            ax.set_xlabel("passages")
            ax.set_title(label)
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    worst = max((b for e in exponents.values() for b in (e["encode_seconds"], e["index_bytes"]) if b), default=1.0)
    report("scaling", worst, 1.15, higher_is_better=False, rows=rows, exponents=exponents, rss_line=marginal,
           machines=machines)


if __name__ == "__main__":
    main()
