"""BM25 and impact search call Anserini's Java classes directly: the same runs as Pyserini's Python wrappers,
without importing ``pyserini.search.lucene`` (which imports ``pyserini.encode``: transformers, openai, seconds a
process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.data.dataset import Doc

DOCS = [Doc("d1", "Vitamin D", "Vitamin D deficiency and fractures in older adults."),
        Doc("d2", "Fractures", "Hip fractures are common after falls; vitamin supplements did not prevent them."),
        Doc("d3", "Sleep", "Sleep apnea and the risk of heart disease."),
        Doc("d4", "Heart", "Heart disease, blood pressure and salt."),
        Doc("d5", "", "Older adults who fall often break a hip.")]
QUERIES = {"q1": "vitamin d fractures", "q2": "heart disease risk", "q3": "older adults hip falls",
           "q4": "zebra"}  # q4 matches nothing


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory):
    from harness.index.lucene import build_bm25_index

    out = tmp_path_factory.mktemp("bm25") / "index"
    build_bm25_index(DOCS, ["title", "text"], out)
    return out


def test_bm25_search_is_pyserini_s_lucene_searcher(bm25_index):
    from pyserini.search.lucene import LuceneSearcher  # (the fixture started the harness's JVM)

    from harness.index.lucene import bm25_search

    ours = bm25_search(bm25_index, QUERIES, k=10, k1=0.9, b=0.4)
    searcher = LuceneSearcher(str(bm25_index))
    searcher.set_bm25(0.9, 0.4)
    qids = list(QUERIES)
    hits = searcher.batch_search([QUERIES[q] for q in qids], qids, k=10, threads=2)
    theirs = {q: [(h.docid, float(h.score)) for h in hits.get(q, [])] for q in qids}
    assert ours == theirs and ours["q4"] == [] and len(ours["q1"]) >= 2
    assert bm25_search(bm25_index, QUERIES, k=10, k1=1.2, b=0.75) != ours  # the parameters reach Lucene


def test_bm25_pair_scores_are_pyserini_s_index_reader(bm25_index):
    from pyserini.index.lucene import LuceneIndexReader

    from harness.index.lucene import BM25PairScorer, bm25_search
    from harness.java import autoclass

    similarity = autoclass("org.apache.lucene.search.similarities.BM25Similarity")(0.9, 0.4)
    reader, ours = LuceneIndexReader(str(bm25_index)), BM25PairScorer(bm25_index, 0.9, 0.4)
    for query in QUERIES.values():
        for doc in DOCS:
            assert ours.score(query, doc.doc_id) == reader.compute_query_document_score(
                doc.doc_id, query, similarity=similarity)
    (top, score), *_ = bm25_search(bm25_index, {"q": QUERIES["q1"]}, k=1, k1=0.9, b=0.4)["q"]
    # (the same BM25 as the search's up to Lucene's float arithmetic: 2.00593 against 2.00590 here)
    assert ours.score(QUERIES["q1"], top) == pytest.approx(score, rel=1e-4)


def test_impact_search_is_pyserini_s_lucene_impact_searcher(tmp_path):
    from harness.java import start_jvm

    start_jvm()  # the harness's Java 21, before Pyserini would start its own
    from pyserini.search.lucene import LuceneImpactSearcher

    from conftest import write_impact_index
    from harness.index.impact import ImpactSearcher, _Precomputed, quantize

    docs = {"d1": {"apple": 1.0, "pie": 0.5}, "d2": {"apple": 0.2, "tart": 2.0}, "d3": {"banana": 1.5},
            "d4": {"pie": 1.2, "tart": 0.3, "crumble": 0.7}, "d5": {"apple": 0.41, "crumble": 0.05}}
    write_impact_index(tmp_path, docs)
    queries = {"q1": {"apple": 1.0, "pie": 0.5}, "q2": {"tart": 1.0, "crumble": 0.33, "unseen": 2.0},
               "q3": {"banana": 0.25}, "q4": {"apple": 0.7, "tart": 0.7, "pie": 0.7, "crumble": 0.7}}
    ours = ImpactSearcher(tmp_path / "index", 100).search(queries, k=10)
    encoder = _Precomputed({q: quantize(rep, 100) for q, rep in queries.items()})
    searcher = LuceneImpactSearcher(str(tmp_path / "index"), encoder, min_idf=-1)
    hits = searcher.batch_search(list(queries), list(queries), k=10, threads=2)
    theirs = {q: [(h.docid, float(h.score) / 100 ** 2) for h in hits[q]] for q in queries}
    assert ours == theirs and len(ours["q4"]) == 4  # every passage but d3 (banana only)


def test_searching_does_not_import_pyserini_s_query_encoders(bm25_index):
    """What the direct calls are for: a process that searches BM25 never imports ``pyserini.encode``."""
    code = ("import sys\nfrom pathlib import Path\nfrom harness.index.lucene import bm25_search\n"
            f"run = bm25_search(Path({str(bm25_index)!r}), {{'q': 'vitamin d'}}, k=3, k1=0.9, b=0.4)\n"
            "assert run['q'], run\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyserini.encode', 'pyserini.search'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
