"""Evaluation: the harness's ``evaluate`` (aggregate + per-query) against ir_measures' ``calc_aggregate`` and
``iter_calc`` directly, on the same run and qrels (floor: 0.9 of the throughput).

    python benchmarks/evaluation.py [--dataset beir/scifact/test] [--depth 1000] [--max-queries 0]

The run is BM25's top ``depth`` (the evaluation every recipe does); the two must agree to 1e-9.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import best_of, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beir/scifact/test")
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--max-queries", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import ir_measures

    from harness.data import open_dataset
    from harness.evaluate import evaluate
    from harness.index.lucene import bm25_search, build_bm25_index

    ds = open_dataset(args.dataset, max_queries=args.max_queries)
    with tempfile.TemporaryDirectory() as tmp:
        build_bm25_index(ds.docs(), ["title", "text"], Path(tmp) / "index")
        run = bm25_search(Path(tmp) / "index", ds.queries, k=args.depth, k1=0.9, b=0.4)
    names = ["nDCG@10", "RR@10", "R@100", "R@1000"]
    measures = [ir_measures.parse_measure(m) for m in names]

    def raw():
        qrels = [ir_measures.Qrel(q, d, r) for q, docs in ds.qrels.items() for d, r in docs.items()]
        scored = [ir_measures.ScoredDoc(q, d, s) for q, hits in run.items() for d, s in hits]
        agg = ir_measures.calc_aggregate(measures, qrels, scored)
        per = list(ir_measures.iter_calc(measures, qrels, scored))
        return {str(m): float(v) for m, v in agg.items()}, per

    def harness():
        return evaluate(run, ds.qrels, names)

    raw()
    t_raw, (agg_raw, _) = best_of(raw, args.repeats)
    t_h, (agg_h, _) = best_of(harness, args.repeats)
    for name, m in zip(names, measures):
        assert abs(agg_h[name] - agg_raw[str(m)]) < 1e-9, (name, agg_h[name], agg_raw[str(m)])
    report("evaluation", t_raw / t_h, 0.9, queries=len(ds.queries), pairs=sum(map(len, run.values())),
           raw_seconds=round(t_raw, 4), harness_seconds=round(t_h, 4))


if __name__ == "__main__":
    main()
