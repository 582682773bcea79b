"""Effectiveness with ir_measures: aggregate figures and per-query values.

Measures are ir_measures strings from the recipe (``nDCG@10``, ``RR@10``, ``R@100``). A judged query the
system returned nothing for scores 0 on every measure (trec_eval would silently drop it and inflate the
mean); every figure is the mean over all judged queries.
"""

from __future__ import annotations

from typing import Iterable

from harness.data.dataset import Qrels
from harness.evaluate.runfile import Run


def evaluate(run: Run, qrels: Qrels, measures: Iterable[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Returns (aggregate {measure: value}, per-query {qid: {measure: value}}) over the judged queries."""
    import ir_measures

    names = list(measures)
    parsed = {str(ir_measures.parse_measure(m)): m for m in names}
    qrels_list = [ir_measures.Qrel(qid, did, rel) for qid, docs in qrels.items() for did, rel in docs.items()]
    run_list = [ir_measures.ScoredDoc(qid, did, score) for qid, hits in run.items() if qid in qrels
                for did, score in hits]
    per_query: dict[str, dict[str, float]] = {qid: {m: 0.0 for m in names} for qid in qrels}
    if run_list:
        for metric in ir_measures.iter_calc([ir_measures.parse_measure(m) for m in names], qrels_list, run_list):
            per_query[metric.query_id][parsed[str(metric.measure)]] = float(metric.value)
    n = len(per_query) or 1
    aggregate = {m: sum(v[m] for v in per_query.values()) / n for m in names}
    return aggregate, per_query


def write_per_query(per_query: dict[str, dict[str, float]], measures: list[str], path) -> None:
    """A tab-separated table: query_id, then one column per measure (for paired significance tests)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("query_id\t" + "\t".join(measures) + "\n")
        for qid, values in per_query.items():
            fh.write(qid + "\t" + "\t".join(f"{values[m]:.6f}" for m in measures) + "\n")


def read_per_query(path) -> dict[str, dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")[1:]
        out = {}
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            out[parts[0]] = {m: float(v) for m, v in zip(header, parts[1:])}
    return out
