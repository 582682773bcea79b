"""Suites through submitit: the job plan follows the stage graph, and jobs of the local executor that share
an answer key (and a BM25 index) build each stage once."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.cluster import plan
from harness.suite import suite_recipes


def test_the_plan_puts_each_answer_key_before_its_students_and_self_after_its_teacher():
    jobs = plan(suite_recipes("scifact"))
    names = [j.name for j in jobs]
    keys = {j.name for j in jobs if j.kind == "answer-key"}
    by = {j.name: j for j in jobs}
    # one teacher; ColBERT and dense train on 3 BM25 negatives a query, SPLADE on 7 (_splade.toml): two sets
    # of groups, so two answer keys, each built once however many students read it
    assert len(keys) == 2
    key_of = {family: by[f"scifact-{family}-static"].needs for family in ("splade", "colbert", "dense")}
    assert all(len(k) == 1 and k[0] in keys for k in key_of.values())
    assert key_of["colbert"] == key_of["dense"] != key_of["splade"]
    for family in ("splade", "colbert", "dense"):
        assert by[f"scifact-{family}-multitask"].needs == key_of[family]  # its base variant is static
        assert by[f"scifact-{family}-untrained"].needs == []
        assert by[f"scifact-{family}-margin"].needs == []  # no teacher, no answer key
        assert by[f"scifact-{family}-online"].needs == []  # the teacher scores in the step
        assert f"scifact-{family}-static" in by[f"scifact-{family}-self"].needs
    for j in jobs:  # every job after what it needs
        assert all(names.index(n) < names.index(j.name) for n in j.needs)
    # a different teacher is a different answer key
    other = plan(suite_recipes("scifact", ["teacher.max_len=128"], only="*-static"))
    other_keys = {j.name for j in other if j.kind == "answer-key"}
    assert len(other_keys) == 2 and not other_keys & keys


@pytest.mark.e2e
def test_local_executor_jobs_share_one_answer_key_and_build_each_stage_once(tmp_path, data_dir):
    """Two workers, four jobs: the answer key and the BM25 recipe start together and need the same BM25
    index (one builds it, the other waits: "wait   bm25-index …: pid … on <host> is building it"); two
    students (two training seeds) then train on the one answer key at once and need the same BM25 index of
    their slice and the same teacher reference run (one job builds each)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "bm25.toml").write_text('extends = "baselines/bm25-scifact"\nname = "c-bm25"\n'
                                     '[eval]\ndatasets = ["beir/scifact/test"]\nmax_queries = 20\n')
    student = ('extends = "scifact/dense-static"\n[train]\nmax_queries = 12\nseed = {seed}\n'
               '[eval]\ndatasets = ["beir/scifact/test"]\nmax_queries = 20\nmax_docs = 300\ndev = false\n'
               '[student]\ndoc_max_len = 64\neval_doc_max_len = 64\n[negatives]\ndepth = 10\n')
    (suite / "a.toml").write_text('name = "c-a"\n' + student.format(seed=1))
    (suite / "b.toml").write_text('name = "c-b"\n' + student.format(seed=2))
    runs = tmp_path / "runs"
    out = run_cli("suite", str(suite), "--executor", "local", "--workers", "2", "--runs-dir", str(runs), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    payload = last_json_line(out.stdout)
    assert sorted(payload["recipes"]) == ["c-a", "c-b", "c-bm25"] and not payload["failed"]
    assert payload["executor"]["kind"] == "local" and payload["executor"]["workers"] == 2
    assert any(k.startswith("answer-key:") for k in payload["executor"]["job_seconds"])
    logs = "".join(p.read_text() for p in (runs / "_jobs").glob("*_log.err"))
    built = Counter(re.findall(r" build  (\S+ [0-9a-f]{12})", logs))
    assert built and max(built.values()) == 1, built  # each stage built by one job only
    for stage in ("answer-key", "groups", "teacher-rerank"):
        assert sum(1 for s in built if s.startswith(stage + " ")) == 1, (stage, built)
    assert sum(1 for s in built if s.startswith("bm25-index ")) == 2  # the whole corpus, the students' slice
    assert len([s for s in built if s.startswith("student-dense ")]) == 2  # two training seeds, two students
    reused = re.findall(r" reuse  answer-key [0-9a-f]{12}", logs)
    assert len(reused) >= 2  # both students found the answer key its own job built
    a, b = payload["recipes"]["c-a"]["results"], payload["recipes"]["c-b"]["results"]
    assert a != b  # two seeds, two students
    assert Path(payload["recipes"]["c-bm25"]["run_dir"]).is_dir()


def test_bad_executor_arguments_are_one_line_before_any_work(tmp_path):
    out = run_cli("suite", "scifact", "--executor", "local", "--workers", "0", "--runs-dir", str(tmp_path))
    assert out.returncode == 2 and out.stderr.strip() == "error: --workers: expected a positive integer, got 0"
    assert not any(tmp_path.iterdir())


def test_local_jobs_have_no_two_minute_limit_and_a_failed_job_says_its_own_error(tmp_path):
    """submitit's LocalExecutor signals a job as timed out after 2 minutes unless told otherwise (a student
    training for 96 s failed in CI); and a failed job is reported by its own last traceback line."""
    from harness.cluster import job_error, make_executor

    ex = make_executor("local", tmp_path)
    assert ex.parameters.get("timeout_min", 2.0) >= 60 * 24
    import submitit

    err = submitit.core.utils.FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call"
        " last):\n  File \"x.py\", line 1\nharness.errors.HarnessError: recipes/a.toml: train.lr: expected a number"
        "\n\n----------------------\nYou can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:"
        "\n  - /j/1_0_log.err\n  - /j/1_0_log.out")
    assert job_error(err) == "harness.errors.HarnessError: recipes/a.toml: train.lr: expected a number"
    assert job_error(RuntimeError("")) == "RuntimeError"
