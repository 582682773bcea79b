"""MS MARCO on paper: per-unit costs (``benchmarks/unit_costs.py``'s JSON) extrapolated to the
``recipes/msmarco/`` grid on 1, 4 and 8 devices — hours, disk and memory per stage — as ``docs/scale.md``.

    python benchmarks/scale_report.py benchmarks/results/unit-costs-cuda.json [--out docs/scale.md]
                                      [--scaling benchmarks/results/scaling-rows.jsonl]

Sizes (ir_datasets' documentation): 8,841,823 passages; msmarco-passage/train/judged 502,939 queries with
532,761 judged positives (one training example each); dev/small 6,980 queries, TREC DL 2019 / 2020 43 / 54.
The answer key scores each query's positives and its 7 negatives; one epoch of 32 queries a step caps at the
recipes' 150,000 steps. Answer-key scoring, training and encoding split over N devices (harness run
--nproc N); the Lucene and PLAID index builds and BM25 do not. Times are the measured rates scaled, with no
allowance for the communication of more devices (an upper bound on what N buys). Training is costed in
examples: steps/s measured at ``unit_costs.py``'s batch times that batch (on the CPU the recipes' 32 queries ×
8 passages of bert-base do not fit in 24 GiB, so it is measured at 8; per-example cost at a larger batch is no
higher on a GPU). RAM per stage is the measuring process's peak during it; for the corpus-sized stages
(encoding and index build, streamed) the line through peak RSS against corpus size that
``benchmarks/scaling.py`` measured for the family, each size in a fresh process (``--scaling``, its rows
file), at 8.8M passages; without it the in-process figure at the measured size (an upper bound: it includes
memory the allocator kept from training).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

PASSAGES = 8_841_823
TRAIN_QUERIES = 502_939
POSITIVES = 532_761
NEGATIVES = 7
EVAL_QUERIES = 6_980 + 43 + 54
RERANK_DEPTH = 100
MAX_STEPS = 150_000
DEVICES = (1, 4, 8)


RECIPE_BATCH = 32  # recipes/msmarco/_base.toml [train] batch_queries


class Fit(NamedTuple):
    """The least-squares line of peak RSS against corpus size, and what it was measured on."""
    bytes_at_zero: float
    bytes_per_passage: float
    sizes: int
    largest: int
    stage_bytes_per_passage: "float | None"  # the index stage's size on disk at the largest size
    machine: str = ""  # the machine that measured the rows (scaling.py's label)


def rss_fits(scaling_rows: "list[dict]") -> "dict[str, Fit]":
    """A :class:`Fit` per family over ``benchmarks/scaling.py``'s rows (each size measured in a fresh process; a
    family needs two sizes). Rows of different machines are not fitted together: each family's line is drawn
    through the rows of the machine that measured it at the most sizes (then: up to the largest)."""
    import numpy as np
    from scaling import row_machine  # one notion of which machine measured a row, scaling.py's

    out = {}
    for family in {r["family"] for r in scaling_rows}:
        by_machine: dict = {}
        for r in scaling_rows:
            if r["family"] == family:
                by_machine.setdefault(row_machine(r), []).append(r)
        fam = max(by_machine.values(), key=lambda rs: (len({r["passages"] for r in rs}), max(r["passages"] for r in rs)))
        if len({r["passages"] for r in fam}) >= 2:
            slope, icpt = np.polyfit([r["passages"] for r in fam], [r["peak_rss_bytes"] for r in fam], 1)
            top = max(fam, key=lambda r: r["passages"])
            out[family] = Fit(float(icpt), max(float(slope), 0.0), len({r["passages"] for r in fam}), top["passages"],
                              top["index_bytes"] / top["passages"] if top.get("index_bytes") else None,
                              row_machine(top))
    return out


def dense_growth_factor(costs: dict, fits: dict) -> "float | None":
    """How much faster a dense index grows in RAM here than in the scaling rows: FAISS holds the index in memory while
    it builds and writes it, so the per-passage growth follows the index's bytes per passage — ``scaling.py``
    measures the suite's student (MiniLM, 384-d), ``unit_costs.py`` the grid's backbone."""
    fit, f = fits.get("dense"), costs.get("dense") or {}
    if not fit or not fit.stage_bytes_per_passage or not f.get("stage_bytes_per_1k_passages"):
        return None
    return f["stage_bytes_per_1k_passages"] / 1000 / fit.stage_bytes_per_passage


def rows(costs: dict, fits: "dict[str, Fit] | None" = None) -> "list[dict]":
    """(stage, units, rate, sharded, disk bytes, note) of one MS MARCO grid, shared stages once."""
    pairs = POSITIVES + TRAIN_QUERIES * NEGATIVES
    out = [{"stage": "answer key (teacher scores, shared by static + multitask)", "units": pairs, "unit": "pairs",
            "rate": costs["teacher_pairs_per_s"], "sharded": True, "disk": pairs * 16,
            "ram": costs.get("teacher_ram_bytes")},
           {"stage": "teacher reranking eval sets (reference rows)", "units": EVAL_QUERIES * RERANK_DEPTH,
            "unit": "pairs", "rate": costs["teacher_pairs_per_s"], "sharded": True, "disk": 0,
            "ram": costs.get("teacher_ram_bytes")}]
    fits = fits or {}
    for family in ("dense", "splade", "colbert"):
        f = costs.get(family)
        if not f:
            continue
        steps = min(MAX_STEPS, math.ceil(POSITIVES / RECIPE_BATCH))
        measured_at = "" if f["batch_queries"] == RECIPE_BATCH else f"; rate measured at {f['batch_queries']} a step"
        rate = f["train_steps_per_s"] * f["batch_queries"] if f.get("train_steps_per_s") else None
        out.append({"stage": f"{family}: train one student ({steps:,} steps of {RECIPE_BATCH} queries{measured_at})",
                    "units": steps * RECIPE_BATCH, "unit": "examples", "rate": rate, "sharded": True, "disk": 0,
                    "gpu_memory": f.get("train_peak_gpu_bytes"), "ram": f.get("train_ram_bytes")})
        if family in fits:  # measured in fresh processes at several sizes: the line's value at 8.8M passages
            icpt, slope = fits[family].bytes_at_zero, fits[family].bytes_per_passage
            if family == "dense":
                slope *= dense_growth_factor(costs, fits) or 1.0
            ram, ram_note = icpt + slope * PASSAGES, ""
        else:  # measured once, in the process that trained before: an upper bound at the measured size
            ram = f.get("index_ram_bytes")
            ram_note = f" (RAM at {f['indexed_passages']:,} passages)" if ram else ""
        out.append({"stage": f"{family}: encode the corpus", "units": PASSAGES, "unit": "passages",
                    "rate": f["encode_docs_per_s"], "sharded": True, "disk": 0})
        if family == "colbert":
            tokens = PASSAGES * f["tokens_per_passage"]
            out.append({"stage": "colbert: PLAID index build" + ram_note, "units": tokens / 1e6, "unit": "M tokens",
                        "rate": 1 / f["plaid_build_seconds_per_1m_tokens"], "sharded": False, "ram": ram,
                        "disk": tokens * (f["plaid_bytes_per_token"] + 2 * 128)})  # + float16 vectors for exact
        else:
            disk = f["stage_bytes_per_1k_passages"] * PASSAGES / 1000
            rate = f["indexed_passages"] / f["index_build_seconds"] if f.get("index_build_seconds") else None
            out.append({"stage": f"{family}: index build ({'FAISS HNSW' if family == 'dense' else 'Lucene impacts'})"
                                 + ram_note, "units": PASSAGES, "unit": "passages", "rate": rate, "sharded": False,
                        "disk": disk, "ram": ram})
    return out


def hours(r: dict, n: int) -> "float | None":
    if not r.get("rate"):
        return None
    return r["units"] / r["rate"] / (n if r["sharded"] else 1) / 3600


def render(costs: dict, source: str, fits: "dict[str, Fit] | None" = None) -> str:
    lines = ["# MS MARCO on paper", "",
             f"Per-unit costs measured by `benchmarks/unit_costs.py` ({source}: {costs.get('device')}, backbone "
             f"{costs.get('backbone')}), extrapolated by `benchmarks/scale_report.py` to the `recipes/msmarco/` "
             "grid: 8.8M passages, 503k training queries (533k examples, 4.05M answer-key pairs at 7 negatives), "
             "7,077 evaluation queries. Sharded stages divide by the number of devices (`harness run --nproc N`); "
             "index builds do not. No allowance for communication: the 4- and 8-device columns are lower bounds.", "",
             *([f"**Measured on the CPU** ({costs.get('cores', 'its')} cores, no accelerator): a device below is one "
                "such CPU, the accelerator-memory column is empty, and training on it is not a plan — run "
                "`unit_costs.py` where a GPU is lent for the figures a lab would use. The table shows the "
                "method and where the time goes (training, then encoding, then the impact index build).", ""]
               if costs.get("device") == "cpu" else []),
             "| stage | units | rate | 1 device (h) | 4 devices (h) | 8 devices (h) | disk (GB) | RAM (GiB) | "
             "accelerator memory (GiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows(costs, fits):
        cells = [f"{hours(r, n):.1f}" if hours(r, n) is not None else "–" for n in DEVICES]
        rate = f"{r['rate']:.3g} {r['unit']}/s" if r.get("rate") else "–"
        mem = f"{r['gpu_memory'] / 2**30:.1f}" if r.get("gpu_memory") else "–"
        ram = f"{r['ram'] / 2**30:.1f}" if r.get("ram") else "–"
        lines.append(f"| {r['stage']} | {r['units']:,.0f} {r['unit']} | {rate} | " + " | ".join(cells)
                     + f" | {r['disk'] / 1e9:.1f} | {ram} | {mem} |")
    lines += ["", f"Peak RSS of the measuring process: {costs.get('peak_rss_bytes', 0) / 2**30:.1f} GiB. \"RAM at N "
              "passages\": the process's peak while it encoded and indexed N passages after training, so an upper "
              "bound that includes memory the allocator kept from training; `benchmarks/scaling.py` measures each "
              "corpus size in a fresh process (`--scaling`)."]
    if fits:
        lines.append("RAM of the corpus-sized stages (encoding + index build, streamed): the line through peak RSS "
                     "against corpus size that `benchmarks/scaling.py` measured, each size in a fresh process, at "
                     "8.8M passages: " + ", ".join(f"{k} {a / 2**30:.2f} GiB + {b * 1000 / 2**20:.2f} MiB per 1k "
                                                    f"passages (from {n} sizes up to {top:,}"
                                                    + (f", on {where}" if where else "") + ")"
                                                    for k, (a, b, n, top, _, where) in sorted(fits.items()))
                     + ". A line through two or three sizes far below 8.8M is a warning, not a forecast: where it "
                       "grows, measure the 200k size before planning with it.")
        factor = dense_growth_factor(costs, fits)
        if factor:
            lines.append(f"The dense line's growth per passage is multiplied by {factor:.2f}: this backbone's index "
                         "bytes per passage against those of the student `scaling.py` measured (FAISS holds the index "
                         "in memory while it builds and writes it, so a wider vector grows the RAM with it).")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("costs", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scaling", type=Path, default=None,
                    help="benchmarks/scaling.py's rows file (--rows): per-passage RSS growth for the corpus-sized stages")
    args = ap.parse_args()
    data = json.loads(args.costs.read_text())
    fits = None
    if args.scaling is not None:
        fits = rss_fits([json.loads(line) for line in args.scaling.read_text().splitlines() if line.strip()])
    costs = dict(data.get("figures", data))
    costs.setdefault("cores", data.get("machine", {}).get("cores", "its"))
    text = render(costs, args.costs.name, fits)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
