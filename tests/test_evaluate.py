"""Evaluation through ir_measures against values computed by hand."""

from __future__ import annotations

import math

import pytest

from harness.evaluate import evaluate, read_per_query, read_trec, write_per_query, write_trec

QRELS = {"q1": {"d1": 1, "d2": 2, "d3": 0}, "q2": {"d4": 1}, "q3": {"d5": 1}}
RUN = {"q1": [("d3", 3.0), ("d2", 2.0), ("d1", 1.0)], "q2": [("d9", 9.0), ("d8", 8.0), ("d4", 4.0)],
       "q_unjudged": [("d1", 1.0)]}


def test_hand_computed_values():
    agg, per_query = evaluate(RUN, QRELS, ["nDCG@10", "RR@10", "R@2"])
    # q1: gains 0, 2, 1 at ranks 1..3 (trec_eval's linear gain); ideal order 2, 1
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert per_query["q1"]["nDCG@10"] == pytest.approx(dcg / idcg, abs=1e-6)
    assert per_query["q2"]["nDCG@10"] == pytest.approx(1 / math.log2(4), abs=1e-6)
    assert per_query["q1"]["RR@10"] == pytest.approx(1 / 2)
    assert per_query["q2"]["RR@10"] == pytest.approx(1 / 3)
    assert per_query["q1"]["R@2"] == pytest.approx(1 / 2)
    assert per_query["q2"]["R@2"] == 0.0
    # q3 was judged but got no results: it counts as 0, and the mean is over all 3 judged queries
    assert per_query["q3"] == {"nDCG@10": 0.0, "RR@10": 0.0, "R@2": 0.0}
    assert set(per_query) == {"q1", "q2", "q3"}
    assert agg["nDCG@10"] == pytest.approx((dcg / idcg + 0.5) / 3, abs=1e-6)
    assert agg["RR@10"] == pytest.approx((1 / 2 + 1 / 3) / 3, abs=1e-6)
    assert agg["R@2"] == pytest.approx((1 / 2) / 3, abs=1e-6)


def test_matches_ir_measures_when_every_query_has_results():
    import ir_measures

    run = {q: hits for q, hits in RUN.items() if q in ("q1", "q2")}
    qrels = {q: QRELS[q] for q in ("q1", "q2")}
    agg, _ = evaluate(run, qrels, ["nDCG@10", "RR@10", "R@100"])
    ref = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in ("nDCG@10", "RR@10", "R@100")],
        [ir_measures.Qrel(q, d, r) for q, ds in qrels.items() for d, r in ds.items()],
        [ir_measures.ScoredDoc(q, d, s) for q, hs in run.items() for d, s in hs])
    assert {str(k): v for k, v in ref.items()} == pytest.approx(agg)


def test_empty_run_scores_zero():
    agg, per_query = evaluate({}, QRELS, ["nDCG@10"])
    assert agg == {"nDCG@10": 0.0} and len(per_query) == 3


def test_trec_and_per_query_round_trip(tmp_path):
    write_trec(RUN, tmp_path / "run.trec", tag="t")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 3.000000 t"
    assert read_trec(tmp_path / "run.trec") == RUN
    _, per_query = evaluate(RUN, QRELS, ["nDCG@10", "RR@10"])
    write_per_query(per_query, ["nDCG@10", "RR@10"], tmp_path / "pq.tsv")
    back = read_per_query(tmp_path / "pq.tsv")
    assert back.keys() == per_query.keys()
    for q in back:
        assert back[q] == pytest.approx(per_query[q], abs=1e-6)
