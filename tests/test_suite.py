"""`harness suite` end to end on a SciFact slice: every recipe of a folder, stages shared, the cost from an
empty cache counted once per stage and kept when a second invocation only reuses, bad recipes refused up front."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.artifacts import cold_cache_seconds

pytestmark = pytest.mark.e2e

BASE = """extends = "baselines/bm25-scifact"
[eval]
datasets = ["beir/scifact/test"]
max_queries = 30
max_docs = 500
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-suite")
    (folder / "_base.toml").write_text(BASE)  # a base, not a recipe: the suite skips "_" files
    (folder / "bm25-a.toml").write_text('extends = "_base.toml"\nname = "toy-bm25-a"\n')
    (folder / "bm25-b.toml").write_text('extends = "_base.toml"\nname = "toy-bm25-b"\n[bm25]\nk1 = 1.2\n')
    return folder


def test_suite_runs_every_recipe_and_shares_stages(suite, tmp_path_factory, data_dir):
    runs = tmp_path_factory.mktemp("toy-suite-runs")
    out = run_cli("suite", str(suite), "--runs-dir", str(runs), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    report = last_json_line(out.stdout)
    assert sorted(report["recipes"]) == ["toy-bm25-a", "toy-bm25-b"] and report["failed"] == {}
    assert out.stderr.count("build  bm25-index") == 1 and "reuse  bm25-index" in out.stderr  # one index
    payloads = [json.loads((Path(r["run_dir"]) / "results.json").read_text()) for r in report["recipes"].values()]
    assert all(p["results"]["beir/scifact/test[q30,d500]"]["nDCG@10"] > 0 for p in payloads)
    # from an empty cache: the shared index once, not once per recipe
    index_keys = [k for p in payloads for k in p["stage_seconds"] if k.startswith("_shared/bm25-index-")]
    assert len(set(index_keys)) == 1
    index_seconds = payloads[0]["stage_seconds"][index_keys[0]]
    assert report["cold_cache_seconds"] == pytest.approx(cold_cache_seconds(payloads), abs=0.1)
    assert report["cold_cache_seconds"] == pytest.approx(
        sum(p["compute_seconds"] for p in payloads) - index_seconds, abs=0.1)
    # each run's own retrieval and evaluation (scoped to its run directory) count for that run
    own = [k for p in payloads for k in p["stage_seconds"] if not k.startswith("_shared/")]
    assert len(own) == len(set(own)) == 4 and {k.split("/")[0] for k in own} == {"toy-bm25-a", "toy-bm25-b"}
    (summary,) = runs.glob("suite-*.json")  # beside the run directories
    assert json.loads(summary.read_text())["cold_cache_seconds"] == report["cold_cache_seconds"]

    # a second invocation reuses every stage and reports the same cost from an empty cache
    again = run_cli("suite", str(suite), "--runs-dir", str(runs))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "build  " not in again.stderr
    *_, last, where = again.stdout.strip().splitlines()
    assert where.startswith(f"where the time goes (from an empty cache, {report['cold_cache_seconds']:.0f} s): ")
    assert "bm25-index" in where and "evaluate" in where and "retrieve" in where
    assert [r["stage"] for r in report["time_by_stage"]].count("bm25-index") == 1
    m = re.fullmatch(r"suite: 2 ok, 0 failed, (\d+) s \(from an empty cache: (\d+) s = [\d.]+ h, each stage built once\)",
                     last)
    assert m, last
    assert int(m.group(2)) == round(report["cold_cache_seconds"])

    only = run_cli("suite", str(suite), "--runs-dir", str(runs), "--only", "bm25-b", "--json")
    assert only.returncode == 0, only.stderr[-3000:]
    assert list(last_json_line(only.stdout)["recipes"]) == ["toy-bm25-b"]


def test_a_bad_recipe_stops_the_suite_before_any_work(suite, tmp_path, data_dir):
    bad = tmp_path / "bad-suite"
    bad.mkdir()
    for p in suite.glob("*.toml"):
        (bad / p.name).write_text(p.read_text())
    (bad / "bm25-c.toml").write_text('extends = "_base.toml"\nname = "toy-bm25-c"\n[bm25]\nk1 = "high"\n')
    runs = tmp_path / "runs"
    out = run_cli("suite", str(bad), "--runs-dir", str(runs))
    assert out.returncode == 2
    assert "bm25-c.toml" in out.stderr and "bm25.k1" in out.stderr
    assert not runs.exists() or not any(runs.iterdir())  # nothing was run


def test_suite_with_seeds_runs_a_recipe_that_trains_nothing_once(suite, tmp_path_factory, data_dir):
    runs = tmp_path_factory.mktemp("toy-suite-seeds")
    out = run_cli("suite", str(suite), "--runs-dir", str(runs), "--seeds", "3", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    report = last_json_line(out.stdout)
    assert report["seeds"] == 3 and sorted(report["recipes"]) == ["toy-bm25-a", "toy-bm25-b"]
    assert out.stderr.count("trains nothing (method bm25): one run") == 2
    assert not list(runs.glob("*/seed-*"))  # BM25 is deterministic: no seed directories


def test_only_takes_several_globs():
    from harness.suite import suite_recipes

    names = sorted(r.name for r in suite_recipes("scifact", only="dense-*, bm25"))
    assert names == ["scifact-bm25"] + sorted(f"scifact-dense-{v}" for v in
                                              ("margin", "multitask", "online", "self", "static", "untrained"))
    assert [r.name for r in suite_recipes("scifact", only="teacher")] == ["scifact-teacher"]
