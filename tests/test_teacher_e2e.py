"""The teacher as a reranker, end to end on real data through the CLI."""

from __future__ import annotations

import pytest

from conftest import last_json_line, run_cli

pytestmark = pytest.mark.e2e

SLICE = ["--set", "eval.max_queries=60", "--set", "eval.max_docs=1000"]


def test_teacher_reranks_a_scifact_slice_better_than_bm25(tmp_path, data_dir):
    out = run_cli("run", "baselines/teacher-scifact", "--runs-dir", str(tmp_path), "--json", *SLICE)
    assert out.returncode == 0, out.stderr
    payload = last_json_line(out.stdout)
    ds = "beir/scifact/test[q60,d1000]"
    ref = payload["reference"]
    assert ref["depth"] == 100
    assert payload["results"][ds] == ref["teacher"][ds]  # the rerank recipe's result is the teacher row
    assert ref["teacher"][ds]["nDCG@10"] > ref["bm25"][ds]["nDCG@10"] + 0.02
    assert payload["warnings"] == []


def test_a_weak_teacher_is_flagged_loudly(tmp_path, data_dir, tiny_cross_encoder):
    out = run_cli("run", "baselines/teacher-scifact", "--runs-dir", str(tmp_path), "--json", *SLICE,
                  "--set", "teacher.kind=cross-encoder", "--set", f'teacher.model="{tiny_cross_encoder}"',
                  "--set", "teacher.max_len=64", "--set", "name=weak-teacher")
    assert out.returncode == 0, out.stderr
    payload = last_json_line(out.stdout)
    assert len(payload["warnings"]) == 1 and payload["warnings"][0].startswith("TEACHER WEAKER THAN BM25")
    assert "TEACHER WEAKER THAN BM25" in out.stderr


@pytest.mark.slow
def test_default_teacher_beats_bm25_on_full_scifact(tmp_path, data_dir):
    out = run_cli("run", "baselines/teacher-scifact", "--runs-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    ref = last_json_line(out.stdout)["reference"]
    teacher, bm25 = ref["teacher"]["beir/scifact/test"], ref["bm25"]["beir/scifact/test"]
    assert bm25["nDCG@10"] == pytest.approx(0.6789, abs=5e-4)
    assert teacher["nDCG@10"] > 0.72  # measured 0.7394 on 2 cores
