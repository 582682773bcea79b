"""Training seeds and comparisons between runs: aggregation over seeds (hand-made values, known answers),
the bootstrap CI and the paired comparison against scipy, ``harness compare`` and its exit codes, tables
with mean ± std."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _report_fakes import TOY, make_fake_runs, write_run
from conftest import last_json_line, run_cli
from harness.report.compare import compare_runs
from harness.report.results import load_runs
from harness.report.significance import bootstrap_ci, paired_comparison
from harness.report.tables import build_table
from harness.seeds import aggregate, mean_per_query, mean_std


# ---- aggregation ---------------------------------------------------------------------------------------

def test_mean_and_sample_std_by_hand():
    assert mean_std([0.5, 0.7, 0.6]) == pytest.approx((0.6, 0.1))  # sqrt((0.01 + 0.01 + 0) / 2)
    assert mean_std([0.42]) == (0.42, 0.0)
    assert all(math.isnan(x) for x in mean_std([]))


def test_per_query_mean_over_seeds_keeps_the_queries_every_seed_has():
    seeds = [{"q1": {"m": 0.2}, "q2": {"m": 1.0}, "q3": {"m": 0.0}},
             {"q1": {"m": 0.4}, "q2": {"m": 1.0}},
             {"q2": {"m": 1.0}, "q1": {"m": 0.6}}]
    assert mean_per_query(seeds) == {"q1": {"m": pytest.approx(0.4)}, "q2": {"m": 1.0}}


def _seed_runs(root: Path) -> list[Path]:
    """Three seed runs of one recipe on TOY: per-query nDCG@10 known, so mean and std are known."""
    per_seed = [[0.2, 1.0, 0.5, 0.3], [0.4, 1.0, 0.5, 0.1], [0.6, 1.0, 0.2, 0.2]]
    dirs = []
    for k, vals in enumerate(per_seed):
        values = {TOY: {f"q{i}": {"nDCG@10": v, "R@100": 1.0} for i, v in enumerate(vals)}}
        d = write_run(root / "dense-toy", f"seed-{k}", values, training={"steps": 3, "train_seconds": 10.0 + k},
                      foreign=False)
        payload = json.loads((d / "results.json").read_text())
        payload.update(recipe="dense-toy", train_seed=k)
        (d / "results.json").write_text(json.dumps(payload))
        dirs.append(d)
    return dirs


def test_aggregate_of_hand_made_seed_runs(tmp_path):
    dirs = _seed_runs(tmp_path)
    payloads = [json.loads((d / "results.json").read_text()) for d in dirs]
    out = aggregate(payloads, tmp_path / "dense-toy", "dense-toy")
    # seed means: 0.5, 0.5, 0.5 -> 0.5 ± 0
    assert out["results"][TOY]["nDCG@10"] == pytest.approx(0.5)
    assert out["std"][TOY]["nDCG@10"] == pytest.approx(0.0, abs=1e-12)
    assert out["seeds"]["n"] == 3 and out["seeds"]["train_seeds"] == [0, 1, 2]
    assert out["training"]["train_seconds"] == pytest.approx(11.0)
    assert out["training"]["train_seconds_std"] == pytest.approx(1.0)
    # per-query values averaged over the seeds: q0 (0.2, 0.4, 0.6) -> 0.4, q3 (0.3, 0.1, 0.2) -> 0.2
    from harness.evaluate import read_per_query

    pq = read_per_query(out["files"][TOY]["per_query"])
    assert pq["q0"]["nDCG@10"] == pytest.approx(0.4) and pq["q3"]["nDCG@10"] == pytest.approx(0.2)
    assert pq["q2"]["nDCG@10"] == pytest.approx(0.4)


def test_aggregate_std_is_the_sample_std_of_the_seed_means(tmp_path):
    root = tmp_path
    payloads = []
    for k, shift in enumerate([0.0, 0.1, 0.2]):
        d = write_run(root / "r", f"seed-{k}", {TOY: {"a": {"m": 0.1 + shift}, "b": {"m": 0.3 + shift}}},
                      foreign=False)
        payloads.append(json.loads((d / "results.json").read_text()))
    out = aggregate(payloads, root / "r", "r")
    assert out["results"][TOY]["m"] == pytest.approx(0.3)
    assert out["std"][TOY]["m"] == pytest.approx(0.1)


# ---- statistics against scipy -------------------------------------------------------------------------

def test_bootstrap_ci_is_scipys_percentile_bootstrap():
    from scipy import stats

    x = np.random.default_rng(3).uniform(0, 1, 60)
    lo, hi = bootstrap_ci(x, seed=7)
    ref = stats.bootstrap((x,), np.mean, confidence_level=0.95, n_resamples=10000, method="percentile",
                          random_state=np.random.default_rng(7)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert lo < x.mean() < hi
    # the interval narrows with more queries (same spread)
    y = np.random.default_rng(3).uniform(0, 1, 600)
    lo2, hi2 = bootstrap_ci(y, seed=7)
    assert hi2 - lo2 < (hi - lo) / 2
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5) and bootstrap_ci([0.3]) == (0.3, 0.3)


def test_paired_comparison_against_scipy_and_by_hand():
    from scipy import stats

    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, 40)
    a = b + 0.05 + rng.normal(0, 0.1, 40)
    c = paired_comparison(a, b)
    ref = stats.ttest_rel(a, b)
    assert (c.t, c.p) == pytest.approx((ref.statistic, ref.pvalue))
    d = a - b
    half = stats.t.ppf(0.975, 39) * d.std(ddof=1) / math.sqrt(40)
    assert (c.ci_low, c.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert c.verdict == ("A better" if ref.pvalue < 0.05 else "indistinguishable") == "A better"
    assert paired_comparison(b, a).verdict == "B better"
    same = paired_comparison(b, b)
    assert same.verdict == "indistinguishable" and same.p == 1.0 and same.delta == 0.0


# ---- harness compare ------------------------------------------------------------------------------------

@pytest.fixture
def fake_root(tmp_path):
    return make_fake_runs(tmp_path / "runs")


def test_compare_verdicts_on_known_differences(fake_root):
    runs = {r.label: r for r in load_runs([fake_root])}
    rep = compare_runs(runs["splade-toy"], runs["bm25-toy"], datasets=[TOY])
    verdict = {r.measure: r.verdict for r in rep.rows}
    assert verdict == {"nDCG@10": "A better", "R@100": "indistinguishable"}  # built so (_report_fakes)
    assert not rep.a_worse
    back = compare_runs(runs["bm25-toy"], runs["splade-toy"], measures=["nDCG@10"], datasets=[TOY])
    assert [r.verdict for r in back.rows] == ["B better"] and back.a_worse
    # Holm across the comparisons: each corrected p is at least the raw one
    assert all(r.p_holm >= r.test.p for r in rep.rows)


def test_compare_cli_exit_codes(fake_root, tmp_path):
    a, b = str(fake_root / "bm25-toy"), str(fake_root / "splade-toy")
    ok = run_cli("compare", b, a, "--datasets", TOY)
    assert ok.returncode == 0, ok.stderr
    assert "A better" in ok.stdout and "indistinguishable" in ok.stdout and "d_z" in ok.stdout
    worse = run_cli("compare", a, b, "--datasets", TOY, "--measures", "nDCG@10", "--fail-if-worse")
    assert worse.returncode == 1 and "B better" in worse.stdout
    js = run_cli("compare", a, b, "--datasets", TOY, "--json")
    assert js.returncode == 0 and {c["verdict"] for c in last_json_line(js.stdout)["comparisons"]} == \
        {"B better", "indistinguishable"}
    missing = run_cli("compare", a, str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere: no such run directory" in missing.stderr
    bad_measure = run_cli("compare", a, b, "--measures", "P@5")
    assert bad_measure.returncode == 2 and "--measures: P@5" in bad_measure.stderr
    root = run_cli("compare", str(fake_root), b)
    assert root.returncode == 2 and "give one run directory" in root.stderr


def test_table_shows_mean_and_std_of_a_multi_seed_run(tmp_path):
    dirs = _seed_runs(tmp_path / "runs")
    payloads = [json.loads((d / "results.json").read_text()) for d in dirs]
    out = aggregate(payloads, tmp_path / "runs" / "dense-toy", "dense-toy")
    (tmp_path / "runs" / "dense-toy" / "results.json").write_text(json.dumps(out))
    write_run(tmp_path / "runs", "bm25-toy", {TOY: {f"q{i}": {"nDCG@10": 0.3, "R@100": 1.0} for i in range(4)}},
              method="bm25", foreign=False)
    table = build_table(load_runs([tmp_path / "runs"]), measures=["nDCG@10"])
    md = table.render("md")
    assert "dense-toy (n=3)" in md and "0.5000 ± 0.0000" in md and "mean ± sample standard deviation" in md
    csv = table.render("csv").splitlines()
    assert csv[0].split(",")[:4] == ["recipe", "method", "baseline", "seeds"] and f"{TOY}:nDCG@10:std" in csv[0]
    with_ci = build_table(load_runs([tmp_path / "runs"]), measures=["nDCG@10"], ci=True).render("md")
    assert "bootstrap confidence interval" in with_ci and " [" in with_ci


def test_seeds_must_be_a_whole_number_of_at_least_one(tmp_path):
    for bad in ("0", "-2", "two"):
        out = run_cli("run", "scifact/dense-static", "--seeds", bad, "--runs-dir", str(tmp_path))
        assert out.returncode == 2 and "--seeds: expected a whole number >= 1" in out.stderr
    assert not (tmp_path / "scifact-dense-static").exists()  # refused before any work


# The end-to-end run with --seeds (shared stages built once, students that differ, the aggregate) is in
# tests/test_gate_noise.py, whose fixture trains the two seeds the gate's tests need.
