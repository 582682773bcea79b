"""MS MARCO on paper: per-unit costs (``benchmarks/unit_costs.py``'s JSON) extrapolated to the
``recipes/msmarco/`` grid on 1, 4 and 8 devices — hours, disk and memory per stage — as ``docs/scale.md``.

    python benchmarks/scale_report.py benchmarks/results/unit-costs-cuda.json [--out docs/scale.md]

Sizes (ir_datasets' documentation): 8,841,823 passages; msmarco-passage/train/judged 502,939 queries with
532,761 judged positives (one training example each); dev/small 6,980 queries, TREC DL 2019 / 2020 43 / 54.
The answer key scores each query's positives and its 7 negatives; one epoch of 32 queries a step caps at the
recipes' 150,000 steps. Answer-key scoring, training and encoding split over N devices (harness run
--nproc N); the Lucene and PLAID index builds and BM25 do not. Times are the measured rates scaled, with no
allowance for the communication of more devices (an upper bound on what N buys).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

PASSAGES = 8_841_823
TRAIN_QUERIES = 502_939
POSITIVES = 532_761
NEGATIVES = 7
EVAL_QUERIES = 6_980 + 43 + 54
RERANK_DEPTH = 100
MAX_STEPS = 150_000
DEVICES = (1, 4, 8)


def rows(costs: dict) -> "list[dict]":
    """(stage, units, rate, sharded, disk bytes, note) of one MS MARCO grid, shared stages once."""
    pairs = POSITIVES + TRAIN_QUERIES * NEGATIVES
    out = [{"stage": "answer key (teacher scores, shared by static + multitask)", "units": pairs, "unit": "pairs",
            "rate": costs["teacher_pairs_per_s"], "sharded": True, "disk": pairs * 16},
           {"stage": "teacher reranking eval sets (reference rows)", "units": EVAL_QUERIES * RERANK_DEPTH,
            "unit": "pairs", "rate": costs["teacher_pairs_per_s"], "sharded": True, "disk": 0}]
    for family in ("dense", "splade", "colbert"):
        f = costs.get(family)
        if not f:
            continue
        steps = min(MAX_STEPS, math.ceil(POSITIVES / f["batch_queries"]))
        out.append({"stage": f"{family}: train one student ({steps:,} steps of {f['batch_queries']} queries)",
                    "units": steps, "unit": "steps", "rate": f["train_steps_per_s"], "sharded": True, "disk": 0,
                    "gpu_memory": f.get("train_peak_gpu_bytes")})
        out.append({"stage": f"{family}: encode the corpus", "units": PASSAGES, "unit": "passages",
                    "rate": f["encode_docs_per_s"], "sharded": True, "disk": 0})
        if family == "colbert":
            tokens = PASSAGES * f["tokens_per_passage"]
            out.append({"stage": "colbert: PLAID index build", "units": tokens / 1e6, "unit": "M tokens",
                        "rate": 1 / f["plaid_build_seconds_per_1m_tokens"], "sharded": False,
                        "disk": tokens * (f["plaid_bytes_per_token"] + 2 * 128)})  # + float16 vectors for exact
        else:
            disk = f["stage_bytes_per_1k_passages"] * PASSAGES / 1000
            rate = f["indexed_passages"] / f["index_build_seconds"] if f.get("index_build_seconds") else None
            out.append({"stage": f"{family}: index build ({'FAISS HNSW' if family == 'dense' else 'Lucene impacts'})",
                        "units": PASSAGES, "unit": "passages", "rate": rate, "sharded": False, "disk": disk})
    return out


def hours(r: dict, n: int) -> "float | None":
    if not r.get("rate"):
        return None
    return r["units"] / r["rate"] / (n if r["sharded"] else 1) / 3600


def render(costs: dict, source: str) -> str:
    lines = ["# MS MARCO on paper", "",
             f"Per-unit costs measured by `benchmarks/unit_costs.py` ({source}: {costs.get('device')}, backbone "
             f"{costs.get('backbone')}), extrapolated by `benchmarks/scale_report.py` to the `recipes/msmarco/` "
             "grid: 8.8M passages, 503k training queries (533k examples, 4.05M answer-key pairs at 7 negatives), "
             "7,077 evaluation queries. Sharded stages divide by the number of devices (`harness run --nproc N`); "
             "index builds do not. No allowance for communication: the 4- and 8-device columns are lower bounds.", "",
             "| stage | units | rate | 1 device (h) | 4 devices (h) | 8 devices (h) | disk (GB) | accelerator memory (GB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows(costs):
        cells = [f"{hours(r, n):.1f}" if hours(r, n) is not None else "–" for n in DEVICES]
        rate = f"{r['rate']:.3g} {r['unit']}/s" if r.get("rate") else "–"
        mem = f"{r['gpu_memory'] / 2**30:.1f}" if r.get("gpu_memory") else "–"
        lines.append(f"| {r['stage']} | {r['units']:,.0f} {r['unit']} | {rate} | " + " | ".join(cells)
                     + f" | {r['disk'] / 1e9:.1f} | {mem} |")
    lines += ["", f"Peak RSS of the measuring process: {costs.get('peak_rss_bytes', 0) / 2**30:.1f} GiB.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("costs", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    data = json.loads(args.costs.read_text())
    text = render(data.get("figures", data), args.costs.name)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
