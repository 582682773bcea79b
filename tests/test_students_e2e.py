"""Students end to end through the CLI on a SciFact slice: distillation must beat the untrained student.

The slice (CPU-sized, shared by every test here through one runs directory, so BM25, the answer key and
the teacher are built once): 150 training queries with 3 BM25 negatives each from the top 30, 2 epochs;
evaluation on 100 SciFact test queries over 1,000 passages (every judged one, then the corpus in order).
"""

from __future__ import annotations

import pytest

from conftest import last_json_line, run_cli

pytestmark = pytest.mark.e2e

SLICE = ["--set", "train.max_queries=150", "--set", "negatives.depth=30", "--set", "negatives.count=3",
         "--set", "train.epochs=2.0", "--set", "eval.max_queries=100", "--set", "eval.max_docs=1000",
         "--set", "student.doc_max_len=96"]
DS = "beir/scifact/test[q100,d1000]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("student-runs")


def run(runs, recipe, *extra):
    out = run_cli("run", recipe, "--runs-dir", str(runs), "--json", *SLICE, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    return last_json_line(out.stdout)


@pytest.mark.parametrize("family", ["splade", "colbert"])
def test_distilled_student_beats_the_untrained_one(runs, data_dir, family):
    untrained = run(runs, f"scifact/{family}-untrained")
    trained = run(runs, f"scifact/{family}-static")
    u, t = untrained["results"][DS]["nDCG@10"], trained["results"][DS]["nDCG@10"]
    assert t > u + 0.01, (family, u, t)
    figures = trained["figures"][DS]
    assert figures["index_bytes"] > 0 and figures["docs_per_second"] > 0
    assert figures["latency_ms_p50"] > 0 and figures["latency_ms_p95"] >= figures["latency_ms_p50"]
    assert 0.5 <= figures["overlap@10_vs_exact"] <= 1.0  # the approximate index against exhaustive search
    assert DS in trained["exact"]
    assert trained["training"]["loss_last10"] < trained["training"]["loss_first10"]
    assert trained["reference"]["teacher"][DS]["nDCG@10"] > trained["reference"]["bm25"][DS]["nDCG@10"]
    if family == "splade":
        assert figures["avg_doc_terms"] <= 256 and figures["avg_query_terms"] > 0 and figures["flops"] > 0
    else:
        assert figures["bytes_per_token"] > 0
