"""Reports: significance (against scipy), tables (golden files), plots, leaderboards, concurrency, the gate.

Golden files live in tests/golden/; regenerate them after a deliberate change with
``HARNESS_UPDATE_GOLDEN=1 pytest tests/test_report.py -k golden`` and review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from _report_fakes import FOREIGN_ROOT, MEASURES, TOY, TOY2, make_fake_runs, per_query_values, write_run
from conftest import REPO, run_cli

from harness.report.gate import (FAIL, NOEXPECT, OK, OKISH, SKIP, check_run, parse_expect_file, run_gate)
from harness.report.results import ReportInputError, find_run_dirs, load_runs
from harness.report.significance import compare, holm, paired_ttest
from harness.report.leaderboard import build_leaderboard
from harness.report.tables import build_table

GOLDEN = Path(__file__).parent / "golden"


# ---- significance ------------------------------------------------------------------------------------

A = [0.41, 0.55, 0.30, 0.72, 0.66, 0.18, 0.50, 0.47, 0.93, 0.25, 0.61, 0.38]
B = [0.39, 0.50, 0.33, 0.60, 0.61, 0.20, 0.41, 0.45, 0.80, 0.22, 0.52, 0.40]


def test_paired_ttest_matches_scipy():
    t, p = paired_ttest(A, B)
    ref = stats.ttest_rel(A, B)
    assert t == pytest.approx(float(ref.statistic), rel=1e-12)
    assert p == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert 0 < p < 0.05  # these samples do differ
    t2, p2 = paired_ttest(B, A)  # two-sided: the same p, the opposite t
    assert (t2, p2) == pytest.approx((-t, p))
    d = np.array(A) - np.array(B)  # and the textbook formula
    assert t == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))


def test_paired_ttest_edge_cases():
    assert paired_ttest([0.3, 0.5, 0.7], [0.3, 0.5, 0.7]) == (0.0, 1.0)  # identical: scipy says nan
    assert all(math.isnan(x) for x in paired_ttest([0.3], [0.2]))
    assert paired_ttest([0.5, 0.7, 0.9], [0.4, 0.6, 0.8]) == (math.inf, 0.0)  # the same gain on every query
    assert paired_ttest([0.4, 0.6, 0.8], [0.5, 0.7, 0.9]) == (-math.inf, 0.0)
    with pytest.raises(ValueError):
        paired_ttest([0.1, 0.2], [0.1])


def test_holm_against_hand_computed_values():
    # sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    got = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert got[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(got[4])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm([]).size == 0
    ps = [0.001, 0.2, 0.013, 0.04, 0.0004, 0.7, 0.03]  # brute force from the definition
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    ref = {}
    for rank, i in enumerate(order):
        ref[i] = max(min(1.0, (m - r) * ps[order[r]]) for r in range(rank + 1))
    assert holm(ps) == pytest.approx([ref[i] for i in range(m)])


def test_compare_pairs_queries_by_id_and_corrects_across_the_table(tmp_path):
    runs = load_runs([make_fake_runs(tmp_path / "runs")])
    by = {r.label: r for r in runs}
    frame = compare(runs, by["bm25-toy"], MEASURES, [TOY])
    assert len(frame) == 4
    values = per_query_values()
    qids = sorted(values["bm25-toy"][TOY])
    raw = []
    for _, row in frame.iterrows():
        mine = values[row["recipe"]][TOY]
        base = values["bm25-toy"][TOY]
        ref = stats.ttest_rel([mine[q][row["measure"]] for q in qids], [base[q][row["measure"]] for q in qids])
        assert row["p"] == pytest.approx(float(ref.pvalue), rel=1e-9)  # colbert's rows are stored reversed
        assert row["n"] == 24
        raw.append(float(ref.pvalue))
    assert list(frame["p_holm"]) == pytest.approx(list(holm(raw)))
    marked = {(r["recipe"], r["measure"]) for _, r in frame.iterrows() if r["significant"]}
    assert marked == {("splade-toy", "nDCG@10"), ("colbert-toy", "R@100")}


# ---- loading ---------------------------------------------------------------------------------------------

def test_runs_load_from_a_root_and_paths_written_elsewhere_are_rerooted(tmp_path):
    root = make_fake_runs(tmp_path / "runs")
    (root / "in-progress").mkdir()  # a run still running: no results.json yet, skipped
    dirs = find_run_dirs([root])
    assert [d.name for d in dirs] == ["bm25-toy", "colbert-toy", "splade-toy"]
    runs = load_runs([root, root / "bm25-toy"])  # the same run twice is loaded once
    assert len(runs) == 3
    splade = next(r for r in runs if r.recipe == "splade-toy")
    assert splade.payload["files"][TOY]["per_query"].startswith(FOREIGN_ROOT)
    assert splade.per_query_path(TOY) == root / "splade-toy" / "eval-toy-test-0123456789ab" / "per_query.tsv"
    assert len(splade.per_query(TOY)) == 24
    assert len(splade.train_log()) == 30
    assert splade.efficiency(TOY)["teacher_pairs"] == 64
    assert splade.efficiency(TOY)["latency_ms_p50"] == 12.5


def test_runs_from_two_roots_merge_and_clashing_names_stay_apart(tmp_path):
    a = make_fake_runs(tmp_path / "machine-a")
    b = tmp_path / "machine-b"
    write_run(b, "bm25-toy", {TOY: per_query_values()["bm25-toy"][TOY]}, method="bm25")
    runs = load_runs([a, b])
    assert sorted(r.label for r in runs) == ["bm25-toy@machine-a", "bm25-toy@machine-b", "colbert-toy",
                                             "splade-toy"]


@pytest.mark.parametrize("content", ["{not json", '{"recipe": "x"}', '{"results": {"d": {"m": "high"}}}'])
def test_bad_results_file_is_input_error(tmp_path, content):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(content)
    with pytest.raises(ReportInputError, match=r"results\.json"):
        load_runs([tmp_path / "r"])


def test_nothing_to_load_is_input_error(tmp_path):
    with pytest.raises(ReportInputError, match="no results.json"):
        find_run_dirs([tmp_path])
    with pytest.raises(ReportInputError, match="no such run directory"):
        find_run_dirs([tmp_path / "missing"])


# ---- tables -------------------------------------------------------------------------------------------

def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"golden file {path} missing: run with HARNESS_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.fixture()
def fake_root(tmp_path) -> Path:
    return make_fake_runs(tmp_path / "runs")


@pytest.mark.parametrize("fmt,ext", [("md", "md"), ("csv", "csv"), ("html", "html"), ("latex", "tex")])
def test_table_golden_single_dataset(fake_root, fmt, ext):
    table = build_table(load_runs([fake_root]), baseline="bm25-toy", datasets=[TOY])
    _golden(f"table-single.{ext}", table.render(fmt))


@pytest.mark.parametrize("fmt,ext", [("md", "md"), ("latex", "tex")])
def test_table_golden_two_datasets(fake_root, fmt, ext):
    table = build_table(load_runs([fake_root]), measures=["nDCG@10"])  # default baseline: the BM25 run
    assert table.baseline.recipe == "bm25-toy"
    _golden(f"table-multi.{ext}", table.render(fmt))


def test_table_frame_and_efficiency(fake_root):
    table = build_table(load_runs([fake_root]), baseline="splade-toy")
    assert table.rows[0].label == "splade-toy"
    assert table.frame.loc["colbert-toy", (TOY, "R@100")] == pytest.approx(
        np.mean([v["R@100"] for v in per_query_values()["colbert-toy"][TOY].values()]))
    assert math.isnan(table.frame.loc["colbert-toy", (TOY2, "nDCG@10")])
    assert table.efficiency.loc["colbert-toy", ("", "train_seconds")] == 1234.0
    assert table.efficiency.loc["splade-toy", (TOY, "avg_doc_terms")] == 178.5
    md = table.to_markdown()
    assert "splade-toy (baseline)" in md and "20.6 min" in md


def test_table_bad_arguments_are_input_errors(fake_root):
    runs = load_runs([fake_root])
    with pytest.raises(ReportInputError, match="--baseline: no run named 'nope'"):
        build_table(runs, baseline="nope")
    with pytest.raises(ReportInputError, match="--measures: MAP not in any run"):
        build_table(runs, measures=["MAP"])


def test_cli_table_and_exit_status(fake_root, tmp_path):
    out = tmp_path / "t.csv"
    r = run_cli("table", str(fake_root), "--baseline", "bm25-toy", "--datasets", TOY, "--format", "csv",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (GOLDEN / "table-single.csv").read_text()
    r = run_cli("table", str(fake_root), "--datasets", TOY)
    assert r.returncode == 0 and r.stdout == (GOLDEN / "table-single.md").read_text()
    r = run_cli("table", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_help_lists_the_report_commands_without_heavy_imports():
    code = ("import sys, harness.cli as c; c.build_parser().format_help(); "
            "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stderr
    r = run_cli("--help")
    for cmd in ("table", "check", "leaderboard"):
        assert cmd in r.stdout


# ---- plots -------------------------------------------------------------------------------------------

def test_pareto_frontier():
    from harness.report.plots import Point, pareto_frontier

    pts = [Point("a", 10, 0.5), Point("b", 20, 0.6), Point("c", 30, 0.55), Point("d", 5, 0.3),
           Point("e", 20, 0.4), Point("bm25", None, 0.9)]
    assert [p.label for p in pareto_frontier(pts)] == ["d", "a", "b"]


def test_plots_written_as_png_and_svg(fake_root, tmp_path):
    from harness.report.plots import plots_for_runs

    plots = plots_for_runs(load_runs([fake_root]), tmp_path / "plots")
    assert set(plots) == {f"latency vs nDCG@10: {TOY}", f"latency vs nDCG@10: {TOY2}", "training loss"}
    for files in plots.values():
        assert sorted(p.suffix for p in files) == [".png", ".svg"]
        png, svg = sorted(files)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg")
    svg_text = (tmp_path / "plots" / "efficiency-toy-test.svg").read_text()
    again = plots_for_runs(load_runs([fake_root]), tmp_path / "again")
    assert (tmp_path / "again" / "efficiency-toy-test.svg").read_text() == svg_text  # deterministic
    assert again
    assert not list((tmp_path / "plots").glob(".*tmp*"))


# ---- leaderboards and concurrency -------------------------------------------------------------------------

def test_leaderboard_files(fake_root, tmp_path):
    out = tmp_path / "leaderboards" / "toy"
    r = run_cli("leaderboard", str(fake_root), "--suite", "toy", "--out", str(out), "--datasets", TOY)
    assert r.returncode == 0, r.stderr
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Leaderboard: toy")
    # per dataset, the effectiveness table alone; the efficiency figures in a table of their own
    section = readme.split(f"## {TOY}\n", 1)[1].split("\n## ", 1)[0]
    assert section.lstrip().startswith("| recipe | nDCG@10 | R@100 |\n")
    assert "training time" not in section and "latency" not in section
    assert "| splade-toy | **0.4133** (+0.0300)† | 0.6208 (+0.0000) |" in section  # as in the golden table
    efficiency = readme.split("## Efficiency\n", 1)[1].split("\n## ", 1)[0]
    assert efficiency.lstrip().startswith("| recipe | training time | teacher pairs | index size | terms/doc | "
                                          "latency p50 (ms) |") and "nDCG@10" not in efficiency.split("\n\n")[1]
    assert "![training loss](training-loss.svg)" in readme
    # each fake run: a shared 2 s stage and its own 1 s one; the three from an empty cache: 2 + 3 × 1 s
    assert "| compute time |" in readme and "| 3.0 s |" in readme and "each stage built once: 5.0 s." in readme
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [row["recipe"] for row in rows] == ["bm25-toy", "colbert-toy", "splade-toy"]
    page = (out / "index.html").read_text()
    assert page.count('<table class="harness-table">') == 2 and "<script>" in page  # toy/test, efficiency
    assert "http://" not in page and "https://" not in page  # offline: nothing fetched from anywhere
    for name in ("efficiency-toy-test.svg", "training-loss.svg"):
        assert f'src="{name}"' in page and (out / name).is_file()


def test_variant_matrix_tells_apart_what_differs_and_groups_what_does_not(tmp_path):
    from _report_fakes import make_dense_variants
    from harness.report.matrix import family_matrices

    runs = load_runs([make_dense_variants(tmp_path / "runs")])
    (m,) = family_matrices(runs, [TOY], "nDCG@10")
    assert m.family == "dense" and m.names[-1] == "untrained" and set(m.names[:2]) == {"static", "online"}
    i, j, u = m.names.index("static"), m.names.index("online"), m.names.index("untrained")
    assert not m.significant(i, j) and m.significant(i, u) and m.significant(j, u)
    assert m.delta[i][u] == pytest.approx(0.0995, abs=1e-4) and m.delta[u][i] == pytest.approx(-m.delta[i][u])
    # Holm over the three pairs, by hand from the raw paired t-tests
    from harness.report.significance import holm, paired_ttest

    vals = {r.label.split("-")[1]: [v["nDCG@10"] for _, v in sorted(r.per_query(TOY).items())] for r in runs}
    raw = [paired_ttest(vals["static"], vals["online"])[1], paired_ttest(vals["static"], vals["untrained"])[1],
           paired_ttest(vals["online"], vals["untrained"])[1]]
    expected = holm(raw)
    assert [m.p_holm[i][j], m.p_holm[i][u], m.p_holm[j][u]] == pytest.approx(list(expected))
    assert m.groups() == [m.names[:2]]
    assert "Cannot be told apart: {" in m.legend() and "told apart from their neighbours: untrained" in m.legend()
    md = m.to_markdown()
    assert md.startswith("| row − column | mean |") and "†" in md
    # the leaderboard shows the matrix
    out = tmp_path / "lb"
    build_leaderboard(runs, "toy", out, ci=True)
    readme = (out / "README.md").read_text()
    assert "## Can the variants be told apart?" in readme and f"### dense: {TOY} nDCG@10" in readme
    assert "bootstrap confidence interval" in readme and "--ci" in readme  # the intervals asked for


WRITER = r"""
import json, sys, time
from pathlib import Path
from harness.artifacts import atomic_write_json, atomic_write_text
root, i, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
for rep in range(20):  # rewrite the result many times: a reader must never see a torn file
    run = root / f"recipe-{i}"
    eval_dir = run / "eval-toy"
    eval_dir.mkdir(parents=True, exist_ok=True)
    qs = [f"q{k}" for k in range(50)]
    atomic_write_text(eval_dir / "per_query.tsv", "query_id\tnDCG@10\n" + "".join(f"{q}\t{i / 10:.6f}\n" for q in qs))
    atomic_write_json(run / "results.json", {
        "recipe": f"recipe-{i}", "method": "fake", "run_dir": str(run), "results": {"toy": {"nDCG@10": i / 10}},
        "queries": {"toy": 50}, "files": {"toy": {"per_query": str(eval_dir / "per_query.tsv")}},
        "padding": "x" * 200000, "rep": rep})
"""

READER = r"""
import sys, time
from harness.report.results import load_runs, find_run_dirs
root, until = sys.argv[1], float(sys.argv[2])
loads = 0
while time.time() < until:
    try:
        dirs = find_run_dirs([root])
    except Exception:
        continue  # nothing written yet
    runs = load_runs(dirs)  # raises on a torn results.json
    for r in runs:
        assert r.results["toy"]["nDCG@10"] == int(r.recipe.split("-")[1]) / 10
    loads += 1
print(loads)
"""


def test_eight_processes_write_results_at_once_nothing_lost(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    start = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(root), str(start + 4.0)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(i), str(start)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(8)]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err  # never saw a half-written results.json
    assert int(out.strip()) > 0
    runs = load_runs([root])
    assert sorted(r.recipe for r in runs) == [f"recipe-{i}" for i in range(8)]
    for r in runs:
        i = int(r.recipe.split("-")[1])
        assert r.payload["rep"] == 19
        assert set(v["nDCG@10"] for v in r.per_query("toy").values()) == {i / 10}
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]


BUILDERS = r"""
import os, sys, time
from pathlib import Path
from harness.report.leaderboard import build_leaderboard
from harness.report.results import load_runs
import harness.report.plots, matplotlib.pyplot  # imported once, before the fork: the builds themselves race
src, out, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
build_leaderboard(load_runs([src]), "toy", out.with_name(out.name + "-warm"))  # font caches etc., once
start = time.time() + 0.2
children = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            while time.time() < start:
                time.sleep(0.001)
            build_leaderboard(load_runs([src]), "toy", out)
            code = 0
        finally:
            os._exit(code)
    children.append(pid)
sys.exit(max(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children))
"""


def test_eight_leaderboard_builds_at_once_publish_complete_files(fake_root, tmp_path):
    from harness.report.leaderboard import build_leaderboard

    serial = tmp_path / "serial"
    build_leaderboard(load_runs([fake_root]), "toy", serial)
    out = tmp_path / "lb"
    r = subprocess.run([sys.executable, "-c", BUILDERS, str(fake_root), str(out), "8"], capture_output=True,
                       text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in serial.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # complete, and no temporary files left behind
    for name in names:
        assert (out / name).read_bytes() == (serial / name).read_bytes(), name


# ---- the gate: expect files ---------------------------------------------------------------------------

def _expect(tmp_path: Path, text: str, name: str = "r.expect.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,message", [
    ('[expect."toy/test"]\n"nDCG@10" = "abc"\n',
     'expect."toy/test"."nDCG@10": expected a number or {value = number, tolerance = number}, got \'abc\''),
    ('[expect."toy/test"]\n"nDCG@10" = { value = 0.5, tolerence = 0.1 }\n',
     'expect."toy/test"."nDCG@10".tolerence: unknown key; did you mean "tolerance"?'),
    ('[expect."toy/test"]\n"nDCG@10" = { tolerance = 0.1 }\n', 'expect."toy/test"."nDCG@10".value: expected a number'),
    ('tolerance = -1\n[expect."toy/test"]\n"nDCG@10" = 0.5\n', "tolerance: expected a number >= 0, got -1"),
    ('tolerance = 0.1\n', "expect: missing"),
    ('[expect]\ncranfield = 0.5\n', "expect.cranfield: expected a table of measures"),
    ('expected = 1\n', 'expected: unknown key; did you mean "expect"?'),
    ('[expect."toy/test"\n', "not valid TOML"),
])
def test_malformed_expect_file_is_one_clear_line(tmp_path, text, message):
    path = _expect(tmp_path, text)
    with pytest.raises(ReportInputError) as err:
        parse_expect_file(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_expect_file_values_and_tolerances(tmp_path):
    e = parse_expect_file(_expect(tmp_path, 'tolerance = 0.002\ndescription = "x"\n[expect."toy/test"]\n'
                                            '"nDCG@10" = 0.5\n"R@100" = { value = 0.9, tolerance = 0.01 }\n'
                                            '[expect.cisi]\n"RR@10" = 1\n'))
    assert e.expect["toy/test"]["nDCG@10"].value == 0.5 and e.expect["toy/test"]["nDCG@10"].tolerance == 0.002
    assert e.expect["toy/test"]["R@100"].tolerance == 0.01
    assert e.expect["cisi"]["RR@10"].value == 1.0
    assert parse_expect_file(_expect(tmp_path, '[expect.a]\n"P@5" = 0.5\n', "d.toml")).expect["a"]["P@5"].tolerance == 0.001


def test_gate_states(tmp_path):
    run_dir = write_run(tmp_path / "runs", "toy", {TOY: per_query_values()["bm25-toy"][TOY]}, method="bm25")
    run = load_runs([run_dir])[0]
    actual = run.results[TOY]
    e = parse_expect_file(_expect(tmp_path, (
        'tolerance = 0.001\n[expect."toy/test"]\n'
        f'"nDCG@10" = {actual["nDCG@10"] + 0.0009}\n'  # within the tolerance, below: OK
        f'"R@100" = {actual["R@100"] - 0.01}\n'  # better than expected: OKish
        f'MAP = 0.5\n'  # not evaluated by this run: SKIP
        '[expect.cisi]\n"nDCG@10" = 0.3\n')))
    states = {(c.dataset, c.measure): c.status for c in check_run(run, e)}
    assert states == {(TOY, "nDCG@10"): OK, (TOY, "R@100"): OKISH, (TOY, "MAP"): SKIP, ("cisi", ""): SKIP}
    strict = {c.status for c in check_run(run, e, strict=True) if c.measure in ("MAP", "")}
    assert strict == {FAIL}
    worse = parse_expect_file(_expect(tmp_path, f'[expect."toy/test"]\n"nDCG@10" = {actual["nDCG@10"] + 0.0011}\n',
                                      "w.toml"))
    [c] = check_run(run, worse)
    assert c.status == FAIL and "worse by 0.0011" in c.message
    [c] = check_run(run, None, [tmp_path / "x.expect.toml"])
    assert c.status == NOEXPECT and "x.expect.toml" in c.message
    report = run_gate([run])  # its recipe file (on another machine) has no expect file: reported, exit 0
    assert report.exit_code == 0 and report.checks[0].status == NOEXPECT


def _family(tmp_path: Path, drops: dict[str, float], datasets: int = 10, n: int = 40):
    """A run of ``datasets`` datasets (one measure each) over ``n`` queries, its recipe's expect file and the
    per-query reference (seed 0); dataset ``d<k>`` of the run is ``drops[k]`` worse on average, query by query
    alternately by drop - 0.05 and drop + 0.05 (so a 0.02 drop has a paired z of about 2.5)."""
    rng = np.random.default_rng(0)
    ref = {f"d{k}": {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.8, n))} for k in range(datasets)}
    mine = {ds: {q: {"nDCG@10": v - (drops.get(ds, 0.0) + (0.05 if i % 2 else -0.05) if ds in drops else 0.0)}
                 for i, (q, v) in enumerate(per_q.items())} for ds, per_q in ref.items()}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "r.toml").write_text("")
    runs = [load_runs([write_run(tmp_path / "runs", name, mine, recipe_file=str(tmp_path / "r.toml"))])[0]
            for name in ("first", "second")]
    _expect(tmp_path, "tolerance = 0.01\nseeds = [0]\n" + "".join(
        f'[expect.{ds}]\n"nDCG@10" = {np.mean(list(per_q.values())):.6f}\n' for ds, per_q in ref.items()))
    (tmp_path / "r.expect.tsv").write_text("dataset\tquery_id\tmeasure\tmean\tseed-0\n" + "".join(
        f"{ds}\t{q}\tnDCG@10\t{v:.6f}\t{v:.6f}\n" for ds, per_q in ref.items() for q, v in per_q.items()))
    return runs, parse_expect_file(tmp_path / "r.expect.toml")


def test_drops_are_judged_after_holms_correction_over_the_checks_with_per_query_values(tmp_path):
    """A drop beyond the tolerance with a raw p near 0.01 FAILs as the only check, is within noise among
    ten (Holm: its p times 9 or 10), and among twenty when a second run joins the invocation; a large drop
    FAILs among any number. The chance that a healthy suite FAILs somewhere stays at alpha."""
    from harness.report.gate import settle

    (run, _), e = _family(tmp_path / "a", {"d0": 0.02, "d1": 0.2})
    alone = parse_expect_file(_expect(tmp_path / "a", f'seeds = [0]\n[expect.d0]\n"nDCG@10" = '
                                      f'{e.expect["d0"]["nDCG@10"].value}\n', "r2.expect.toml"))
    alone.path = e.path  # the same per-query reference
    [c] = check_run(run, alone)
    assert c.status == FAIL and 0.005 < c.p < 0.05 and c.p_holm == c.p and "Holm" not in c.message
    checks = {c.dataset: c for c in check_run(run, e)}
    assert len(checks) == 10 and all(c.tested for c in checks.values())
    medium, large = checks["d0"], checks["d1"]
    assert medium.p == c.p and medium.status == OKISH and medium.p_holm == pytest.approx(min(1, 9 * medium.p))
    assert "within noise" in medium.message and "Holm-adjusted over the 10 checks" in medium.message
    assert large.status == FAIL and large.p_holm < 1e-6 and "significantly" in large.message
    assert {c.status for d, c in checks.items() if d not in ("d0", "d1")} == {OK}
    # the invocation is the family: two runs of the recipe, twenty checks
    report = run_gate(_family(tmp_path / "b", {"d0": 0.02, "d1": 0.2})[0])
    first = {c.dataset: c for c in report.checks if c.recipe == "first"}
    assert "over the 20 checks" in first["d0"].message and first["d0"].status == OKISH
    assert first["d1"].status == FAIL and report.exit_code == 1
    # settling again is idempotent; checks without per-query values are not in the family
    assert [c.status for c in settle(report.checks)] == [c.status for c in report.checks]
    (tmp_path / "b" / "r.expect.tsv").unlink()
    report = run_gate(load_runs([tmp_path / "b" / "runs" / "first"]))
    assert {c.dataset: c.status for c in report.checks}["d0"] == FAIL  # the tolerance alone decides
    assert all(not c.tested and c.p is None for c in report.checks)


def test_a_run_that_matches_nothing_of_its_expect_file_fails(tmp_path):
    run = load_runs([write_run(tmp_path / "runs", "toy", {TOY: per_query_values()["bm25-toy"][TOY]},
                               method="bm25")])[0]
    # a slice of another dataset, and a measure the run did not evaluate: nothing in common
    e = parse_expect_file(_expect(tmp_path, '[expect."toy/test[q50]"]\n"nDCG@10" = 0.5\n'
                                            '[expect."toy/test"]\nMAP = 0.5\n'))
    checks = check_run(run, e)
    assert [c.status for c in checks] == [SKIP, SKIP, FAIL]
    assert "nothing this run evaluated is in" in checks[-1].message and "--allow-missing" in checks[-1].message
    assert [c.status for c in check_run(run, e, allow_missing=True)] == [SKIP, SKIP]
    # one measure in common is enough: the others are skipped as before
    partial = parse_expect_file(_expect(tmp_path, '[expect."toy/test"]\nMAP = 0.5\n"nDCG@10" = 0.0\n', "p.toml"))
    assert [c.status for c in check_run(run, partial)] == [SKIP, OKISH]


def test_an_expect_file_naming_a_measure_ir_measures_cannot_parse_is_refused(tmp_path):
    path = _expect(tmp_path, '[expect."toy/test"]\n"nDCG@ten" = 0.5\n')
    with pytest.raises(ReportInputError) as err:
        parse_expect_file(path)
    assert str(err.value) == (f'{path}: expect."toy/test"."nDCG@ten": not a measure ir_measures can parse '
                              '(e.g. "nDCG@10", "RR@10", "R@100")')


# ---- the gate on real runs, through the CLI ---------------------------------------------------------------

@pytest.fixture(scope="module")
def gate_runs(tmp_path_factory, data_dir):
    """Two real BM25 runs on the first 50 SciFact queries from a recipe copied next to hand-written expect
    files: the shipped setting, and a deliberately worse one (k1 0.1, b 0)."""
    base = tmp_path_factory.mktemp("gate")
    recipes = base / "recipes"
    recipes.mkdir()
    (recipes / "mybm25.toml").write_text('extends = "baselines/bm25-scifact.toml"\nname = "mybm25"\n')
    runs = base / "runs"
    common = ["--runs-dir", str(runs), "--set", "eval.max_queries=50", "--json", "-q"]
    good = run_cli("run", str(recipes / "mybm25.toml"), *common, timeout=600)
    assert good.returncode == 0, good.stderr
    worse = run_cli("run", str(recipes / "mybm25.toml"), *common, "--set", "name=mybm25-worse",
                    "--set", "bm25.k1=0.1", "--set", "bm25.b=0.0", timeout=600)
    assert worse.returncode == 0, worse.stderr
    return base


def _write_gate_expect(base: Path) -> dict:
    good = json.loads((base / "runs" / "mybm25" / "results.json").read_text())["results"]["beir/scifact/test[q50]"]
    (base / "recipes" / "mybm25.expect.toml").write_text(
        'tolerance = 0.0001\n[expect."beir/scifact/test[q50]"]\n'
        f'"nDCG@10" = {round(good["nDCG@10"], 4) - 0.02:.4f}\n'  # the good run beats this: OKish
        f'"RR@10" = {round(good["RR@10"], 4):.4f}\n')  # matches: OK
    return good


@pytest.mark.e2e
def test_gate_cli_ok_okish_fail_and_junit(gate_runs, tmp_path):
    _write_gate_expect(gate_runs)
    runs = gate_runs / "runs"
    r = run_cli("check", str(runs / "mybm25"))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("OKish") and "nDCG@10" in line and "update the expectation" in line for line in lines)
    assert any(line.startswith("OK ") and "RR@10" in line for line in lines)

    junit = tmp_path / "gate.xml"
    r = run_cli("check", str(runs / "mybm25"), str(runs / "mybm25-worse"), "--junit", str(junit))
    assert r.returncode == 1, r.stdout + r.stderr
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2 and all("mybm25-worse" in line and "worse by" in line for line in fails)
    assert r.stdout.splitlines()[-1].endswith("2 FAIL, 0 skipped, 0 without an expect file -> FAIL")
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "2" and root.get("tests") == "4"
    failed = [(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert sorted(failed) == [("mybm25-worse.beir/scifact/test[q50]", "RR@10"),
                              ("mybm25-worse.beir/scifact/test[q50]", "nDCG@10")]


@pytest.mark.e2e
def test_gate_cli_on_the_shipped_expectations(gate_runs, tmp_path):
    # mybm25.toml only renames bm25-scifact.toml: its run is a run of the shipped recipe's CI slice
    run = _retarget(gate_runs / "runs" / "mybm25", tmp_path / "bm25-q50",
                    REPO / "recipes" / "baselines" / "bm25-scifact.toml")
    r = run_cli("check", str(run))
    assert r.returncode == 0, r.stdout + r.stderr
    ok = [line for line in r.stdout.splitlines() if line.startswith("OK ") and "beir/scifact/test[q50]" in line]
    assert len(ok) == 4  # recipes/baselines/bm25-scifact.expect.toml, the CI slice
    assert any(line.startswith("SKIP") and "did not evaluate beir/scifact/test " in line
               for line in r.stdout.splitlines())


def _retarget(src: Path, dst: Path, recipe_file: Path) -> Path:
    """A copy of a run directory that claims another recipe file (only the pointer matters to the gate)."""
    import shutil

    shutil.copytree(src, dst)
    payload = json.loads((dst / "results.json").read_text())
    payload["recipe_file"] = str(recipe_file)
    payload["recipe"] = dst.name
    (dst / "results.json").write_text(json.dumps(payload))
    return dst


@pytest.mark.e2e
def test_write_expect_from_a_blessed_run_then_gate(gate_runs, tmp_path):
    runs = gate_runs / "runs"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    good = _retarget(runs / "mybm25", tmp_path / "good", recipes / "blessed.toml")
    worse = _retarget(runs / "mybm25-worse", tmp_path / "worse", recipes / "blessed.toml")
    r = run_cli("check", str(good), str(worse), "--write-expect", "--tolerance", "0.002",
                "--measures", "nDCG@10", "R@100")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"good: written {recipes / 'blessed.expect.toml'}" in r.stdout
    assert "worse: skipped: made with overrides (bm25.k1=0.1 bm25.b=0.0)" in r.stdout  # not the recipe
    text = (recipes / "blessed.expect.toml").read_text()
    scores = json.loads((good / "results.json").read_text())["results"]["beir/scifact/test[q50]"]
    assert "tolerance = 0.002" in text and f'"nDCG@10" = {round(scores["nDCG@10"], 4)}' in text
    assert '"RR@10"' not in text
    assert str(tmp_path) not in text and "from run good (" in text  # no machine path in a committed file
    # the good run's per-query values are kept beside the expect file (seed 0: BM25 trains nothing)
    reference = (recipes / "blessed.expect.tsv").read_text().splitlines()
    assert reference[0] == "dataset\tquery_id\tmeasure\tmean\tseed-0" and len(reference) == 1 + 2 * 50
    assert "seeds = [0]" in text
    r = run_cli("check", str(good), str(worse))
    lines = r.stdout.splitlines()
    assert sum(line.startswith("OK ") and " good " in line for line in lines) == 2
    # k1 0.1, b 0 loses 0.03 nDCG@10 on these 50 queries, but a paired test cannot tell it from chance
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(line.startswith("OKish") and " worse " in line and "nDCG@10" in line and "within noise: p = " in line
               for line in lines)
    # without the per-query reference, the tolerance alone decides: FAIL
    (recipes / "blessed.expect.tsv").rename(recipes / "blessed.tsv.away")
    r = run_cli("check", str(good), str(worse))
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(line.startswith("FAIL") and " worse " in line and "nDCG@10" in line and "no per-query reference" in line
               for line in r.stdout.splitlines())
    (recipes / "blessed.tsv.away").rename(recipes / "blessed.expect.tsv")
    # a second write keeps the file's tolerance and a measure's own one
    (recipes / "blessed.expect.toml").write_text(text.replace(
        f'"R@100" = {round(scores["R@100"], 4)}', f'"R@100" = {{ value = 0.1, tolerance = 0.05 }}'))
    assert run_cli("check", str(good), "--write-expect").returncode == 0
    again = (recipes / "blessed.expect.toml").read_text()
    assert "tolerance = 0.002" in again and f'"R@100" = {{ value = {round(scores["R@100"], 4)}, tolerance = 0.05 }}' in again


@pytest.mark.e2e
def test_gate_cli_missing_and_malformed_expect_files(gate_runs, tmp_path):
    _write_gate_expect(gate_runs)
    runs = gate_runs / "runs"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    lonely = _retarget(runs / "mybm25", tmp_path / "lonely", recipes / "lonely.toml")
    r = run_cli("check", str(lonely), str(runs / "mybm25"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(line.startswith("NOEXPECT") and "lonely.expect.toml" in line for line in r.stdout.splitlines())
    assert run_cli("check", str(lonely), "--strict").returncode == 1

    broken = _retarget(runs / "mybm25", tmp_path / "broken", recipes / "broken.toml")
    (recipes / "broken.expect.toml").write_text('[expect."beir/scifact/test[q50]"]\n"nDCG@10" = "abc"\n')
    r = run_cli("check", str(broken))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {recipes / 'broken.expect.toml'}: ")
    assert 'expect."beir/scifact/test[q50]"."nDCG@10"' in err[0]
    assert run_cli("check", str(tmp_path / "nowhere")).returncode == 2
