"""BM25 end to end through the CLI on real data: Pyserini's published SciFact figures, reuse, --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.artifacts import cold_cache_seconds

pytestmark = pytest.mark.e2e

# Pyserini's published BEIR "flat" BM25 figures for SciFact test.
SCIFACT = {"nDCG@10": 0.6789, "R@100": 0.9253}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def test_bm25_scifact_reproduces_pyserini(runs, data_dir):
    out = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(runs), "--json")
    assert out.returncode == 0, out.stderr
    payload = last_json_line(out.stdout)
    assert payload["recipe"] == "bm25-scifact"
    assert Path(payload["run_dir"]) == runs / "bm25-scifact"
    scores = payload["results"]["beir/scifact/test"]
    for measure, expected in SCIFACT.items():
        assert scores[measure] == pytest.approx(expected, abs=5e-4), measure
    assert payload["queries"]["beir/scifact/test"] == 300

    run_dir = runs / "bm25-scifact"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["recipe_hash"] == payload["recipe_hash"]
    assert manifest["inputs"]["beir/scifact/test"]["corpus"].startswith("beir-corpus:")
    assert {"pyserini", "ir-measures", "python"} <= set(manifest["environment"]["versions"])
    assert "commit" in manifest["environment"]["git"] and manifest["environment"]["device"] == "cpu"
    assert [s["name"] for s in manifest["stages"]] == ["bm25-index", "bm25-run", "retrieve-beir-scifact-test",
                                                      "eval-beir-scifact-test"]
    assert not any(s["reused"] for s in manifest["stages"])
    # compute time = the stages' build times, each as its own manifest recorded it
    built = {f"{Path(s['dir']).parent.name}/{Path(s['dir']).name}":
             json.loads((Path(s["dir"]) / "manifest.json").read_text())["seconds"] for s in manifest["stages"]}
    assert payload["stage_seconds"] == built and all(v > 0 for v in built.values())
    assert payload["compute_seconds"] == pytest.approx(sum(built.values()), abs=1e-2)
    # the run file and per-query values are kept for significance tests
    files = payload["files"]["beir/scifact/test"]
    run_lines = Path(files["run"]).read_text().splitlines()
    assert run_lines[0].split()[1] == "Q0"
    assert len({line.split()[0] for line in run_lines}) == 300  # every query, at most depth 1000 each
    assert max(int(line.split()[3]) for line in run_lines) == 1000
    per_query = Path(files["per_query"]).read_text().splitlines()
    assert per_query[0].split("\t")[0] == "query_id" and len(per_query) == 301


def test_rerun_reuses_and_force_redoes(runs, data_dir):
    again = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(runs), "--json")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("reuse  ") == 4 and "build  " not in again.stderr
    manifest = json.loads((runs / "bm25-scifact" / "manifest.json").read_text())
    assert all(s["reused"] for s in manifest["stages"])
    payload = last_json_line(again.stdout)
    first = payload["results"]
    # a run that only reused its stages keeps what they cost to build (its own wall time is the reuse)
    built = {f"{Path(s['dir']).parent.name}/{Path(s['dir']).name}":
             json.loads((Path(s["dir"]) / "manifest.json").read_text())["seconds"] for s in manifest["stages"]}
    assert payload["stage_seconds"] == built
    assert payload["compute_seconds"] == pytest.approx(sum(built.values()), abs=1e-2)
    assert payload["compute_seconds"] > sum(s["seconds"] for s in manifest["stages"])

    forced = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(runs), "--json", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.count("build  ") == 4 and "reuse  " not in forced.stderr
    assert last_json_line(forced.stdout)["results"] == first


def test_another_recipe_shares_the_index(runs, data_dir):
    out = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(runs), "--json",
                  "--set", "name=bm25-scifact-depth100", "--set", "eval.depth=100")
    assert out.returncode == 0, out.stderr
    assert "reuse  bm25-index" in out.stderr  # one index for every recipe over this corpus
    payload = last_json_line(out.stdout)
    scores = payload["results"]["beir/scifact/test"]
    # the two runs from an empty cache: the shared index counts once
    other = json.loads((runs / "bm25-scifact" / "results.json").read_text())
    index_key = next(k for k in payload["stage_seconds"] if k.startswith("_shared/bm25-index-"))
    assert other["stage_seconds"][index_key] == payload["stage_seconds"][index_key]
    assert cold_cache_seconds([payload, other]) == pytest.approx(
        payload["compute_seconds"] + other["compute_seconds"] - payload["stage_seconds"][index_key], abs=1e-2)
    assert scores["nDCG@10"] == pytest.approx(SCIFACT["nDCG@10"], abs=5e-4)


def test_bm25_on_the_glasgow_collections(runs, data_dir):
    out = run_cli("run", "baselines/bm25-glasgow", "--runs-dir", str(runs), "--json")
    assert out.returncode == 0, out.stderr
    results = last_json_line(out.stdout)["results"]
    # Lucene BM25 (Porter stemming, Lucene's English stop words) on these files, measured 2026-11-27
    expected = {"cranfield": 0.3510, "cisi": 0.3644, "medline": 0.6651}
    for ds, ndcg in expected.items():
        assert results[ds]["nDCG@10"] == pytest.approx(ndcg, abs=5e-4), ds
