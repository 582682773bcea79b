"""Runs taken outside the harness: model cards (golden), and ``harness export`` round trips."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.report.export import model_card

GOLDEN = Path(__file__).parent / "golden" / "model_card_colbert.md"

RESULTS = {
    "recipe": "scifact-colbert-static", "recipe_file": "/x/recipes/scifact/colbert-static.toml",
    "recipe_hash": "0123456789abcdef" * 4, "method": "student", "run_dir": "/x/runs/scifact-colbert-static",
    "description": "colbert — distilled from the static answer key",
    "results": {"beir/scifact/test": {"nDCG@10": 0.6768, "R@100": 0.8943},
                "cranfield": {"nDCG@10": 0.3518, "R@100": 0.7342}},
    "queries": {"beir/scifact/test": 300, "cranfield": 225},
    "training": {"loss": "margin-mse", "steps": 104, "examples": 831, "precision": "bf16", "train_seconds": 118.2,
                 "device": "cpu"},
    "figures": {"beir/scifact/test": {"query_max_len": 32, "doc_max_len": 256},
                "cranfield": {"query_max_len": 32, "doc_max_len": 256}},
}
MANIFEST = {
    "finished": "2026-12-01T17:00:00+0000",
    "config": {"student": {"family": "colbert", "model": "minilm", "layers": 0, "query_max_len": 32, "doc_max_len": 128},
               "teacher": {"kind": "cross-encoder", "model": "cross-encoder/ms-marco-MiniLM-L-6-v2"},
               "distill": {"variant": "static", "loss": "auto"},
               "train": {"dataset": "beir/scifact/train", "dev_fraction": 0.1, "batch_queries": 8, "lr": 5e-05}},
    "environment": {"versions": {"distill-harness": "0.1.0", "torch": "2.11.0", "transformers": "5.24.0"},
                    "git": {"commit": "6eaa1c3d339af41a6ea4bf97de94b1bac01ba047"}, "device": "cpu"},
}


def test_model_card_golden():
    card = model_card(RESULTS, MANIFEST, "path/to/model")
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        GOLDEN.write_text(card)
    assert card == GOLDEN.read_text()


def test_model_card_names_the_loader_of_each_family_and_a_self_teacher():
    for family, needle, lengths in (("splade", "SparseEncoder(", "model.max_seq_length = 256"),
                                    ("dense", "SentenceTransformer(", "model.max_seq_length = 256"),
                                    ("colbert", "models.ColBERT(", "query_length=32, document_length=256)")):
        m = {**MANIFEST, "config": {**MANIFEST["config"], "student": {**MANIFEST["config"]["student"], "family": family}}}
        card = model_card(RESULTS, m)
        assert needle in card and lengths in card  # read texts as the run served them, not at training's 128
        assert "served at queries 32 / passages 256" in card
        unknown = model_card({k: v for k, v in RESULTS.items() if k != "figures"}, m)
        assert needle in unknown and lengths not in unknown and "the backbone's maximum when serving" in unknown
    m = {**MANIFEST, "config": {**MANIFEST["config"], "distill": {"variant": "self", "self": {"teacher": "scifact/colbert-static"}}}}
    card = model_card(RESULTS, m)
    assert "the trained student of `scifact/colbert-static`" in card and "cross-encoder `" not in card
    taught = {"kind": "ensemble", "ensemble": {"members": ["student", "bm25"], "weights": [0.8, 0.2]},
              "student": {"recipe": "scifact/dense-multitask"}}
    card = model_card(RESULTS, {**MANIFEST, "config": {**MANIFEST["config"], "teacher": taught}})
    assert "| teacher | ensemble of 0.8 × the trained student of `scifact/dense-multitask` + 0.2 × BM25 |" in card


def _run_and_export(recipe: str, runs: Path, dest: Path, queries: int, docs: int, env: "dict | None" = None) -> dict:
    """Run ``recipe`` on a SciFact test slice, export the run to ``dest``; returns the run's payload."""
    out = run_cli("run", recipe, "--runs-dir", str(runs), "--json", "--set", f"eval.max_queries={queries}",
                  "--set", f"eval.max_docs={docs}", "--set", "eval.dev=false",
                  "--set", 'eval.datasets=["beir/scifact/test"]', env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    payload = last_json_line(out.stdout)
    out = run_cli("export", payload["run_dir"], "--to", str(dest))
    assert out.returncode == 0, out.stderr[-2000:]
    return payload


@pytest.mark.e2e
def test_export_round_trips_runs_metrics_rows_and_the_model(tmp_path, data_dir):
    from harness.evaluate import read_trec
    from harness.students import load_student

    runs, dest = tmp_path / "runs", tmp_path / "export"
    payload = _run_and_export("scifact/dense-untrained", runs, dest, queries=20, docs=300)
    (ds,) = payload["results"]
    (trec,) = (dest / "runs").glob("*.trec")
    assert read_trec(trec) == read_trec(Path(payload["files"][ds]["run"]))
    # per-query metrics in ir_measures' long format average to the run's figures
    per: dict[str, list[float]] = {}
    for line in next((dest / "metrics").glob("*.tsv")).read_text().splitlines():
        qid, measure, value = line.split("\t")
        per.setdefault(measure, []).append(float(value))
    for measure, values in per.items():
        assert len(values) == 20 and abs(sum(values) / 20 - payload["results"][ds][measure]) < 1e-5
    rows = list(csv.DictReader(open(dest / "results.csv")))
    assert {(r["dataset"], r["measure"]) for r in rows} == {(ds, m) for m in payload["results"][ds]}
    card = (dest / "model" / "README.md").read_text()
    assert "SentenceTransformer(" in card and f"{payload['results'][ds]['nDCG@10']:.4f}" in card
    assert (dest / "model" / "modules.json").is_file()
    # the run trained at 128 passage tokens and served at 256: the exported folder reads 256
    assert payload["figures"][ds]["doc_max_len"] == 256
    assert json.loads((dest / "model" / "sentence_bert_config.json").read_text())["max_seq_length"] == 256
    assert load_student(dest / "model").family == "dense"  # the exported folder loads as it was saved
    try:  # the tools users read runs with, when installed beside the harness
        import ranx  # noqa: F401
    except ImportError:
        return
    from ranx import Run

    assert len(Run.from_file(str(trec), kind="trec").run) == 20


@pytest.mark.e2e
def test_an_exported_splade_index_is_served_by_plain_pyserini(tmp_path, data_dir):
    """The Lucene impact index holds the passages' own ids, so Pyserini's own searcher with the exported model
    as its query encoder (the command in the model card) returns the harness's ranking, without the harness."""
    from harness.evaluate import read_trec
    from harness.index.impact import LUCENE_IDS
    from harness.java import start_jvm

    runs, dest = tmp_path / "runs", tmp_path / "export"
    payload = _run_and_export("scifact/splade-untrained", runs, dest, queries=12, docs=200,
                              env={"HARNESS_PRECISION": "fp32"})
    (ds,) = payload["results"]
    (index,) = (dest / "lucene").iterdir()
    card = (dest / "model" / "README.md").read_text()
    assert "LuceneImpactSearcher(" in card and str(index.resolve()) in card
    assert any((p / LUCENE_IDS).is_file() for p in (runs / "_shared").glob("splade-index-*"))

    start_jvm()
    from pyserini.encode import SpladeQueryEncoder
    from pyserini.search.lucene import LuceneImpactSearcher

    from harness.data import open_dataset

    queries = open_dataset("beir/scifact/test").queries
    harness_run = read_trec(Path(payload["files"][ds]["run"]))
    searcher = LuceneImpactSearcher(str(index), SpladeQueryEncoder(str(dest / "model")), min_idf=-1)
    corpus = {d for p in (runs / "_shared").glob("splade-index-*") for d in (p / "doc_ids.txt").read_text().split()}
    overlaps = []
    for qid, ranked in harness_run.items():
        ours = [d for d, _ in ranked[:10]]
        theirs = [h.docid for h in searcher.search(queries[qid], k=10)]
        assert set(theirs) <= corpus  # the collection's own ids, not positions
        overlaps.append(len(set(ours) & set(theirs)) / max(len(ours), 1))
    assert sum(overlaps) / len(overlaps) >= 0.9, overlaps
