"""Lucene indexes through Pyserini: a BM25 inverted index over document text.

Indexing runs Anserini's ``IndexCollection`` in this process (JsonCollection, positions, doc vectors and
raw text stored, as Pyserini's prebuilt BEIR "flat" indexes do); search calls Anserini's ``SimpleSearcher``
(the Java class Pyserini's ``LuceneSearcher`` wraps, from Pyserini's own jar) with BM25 parameters from the
recipe. Together they reproduce Pyserini's published BEIR figures (SciFact nDCG@10 0.6789).

The Java classes are called directly, not through ``pyserini.search.lucene``: importing that package
imports ``pyserini.encode`` (its neural query encoders, transformers, openai) — 7-10 s of every process
that searches BM25 on a 2-core CPU, 3 s even after a student has loaded transformers — for nothing the
harness calls (tests/test_lucene.py checks the runs equal ``LuceneSearcher``'s).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable

from harness.data.dataset import Doc
from harness.errors import HarnessError
from harness.evaluate.runfile import Run
from harness.java import autoclass, start_jvm

log = logging.getLogger("harness")



def default_threads() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 16))
    except AttributeError:  # pragma: no cover
        return max(1, min(os.cpu_count() or 1, 16))


def index_stats(index_dir: Path) -> dict[str, int]:
    reader_utils = autoclass("io.anserini.index.IndexReaderUtils")
    reader = reader_utils.getReader(str(index_dir))
    try:
        return {"documents": int(reader.numDocs())}
    finally:
        reader.close()


def build_bm25_index(docs: Iterable[Doc], fields: "list[str] | tuple[str, ...]", index_dir: Path,
                     threads: int | None = None) -> dict[str, int]:
    """Index ``docs`` (the chosen fields joined by a space) into ``index_dir``; returns counts."""
    start_jvm()
    work = index_dir.parent / (index_dir.name + ".collection")
    work.mkdir(parents=True, exist_ok=True)
    n = empty = 0
    with open(work / "docs.jsonl", "w", encoding="utf-8") as fh:
        for doc in docs:
            contents = doc.contents(fields)
            n += 1
            empty += not contents
            fh.write(json.dumps({"id": doc.doc_id, "contents": contents}, ensure_ascii=False) + "\n")
    if n == 0:
        raise HarnessError("cannot index an empty corpus")
    args = ["-collection", "JsonCollection", "-input", str(work), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads or default_threads()),
            "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet"]
    autoclass("io.anserini.index.IndexCollection").main(args)
    shutil.rmtree(work, ignore_errors=True)
    stats = index_stats(index_dir)
    stats.update(input_documents=n, empty_documents=empty)
    if stats["documents"] + empty < n:
        raise HarnessError(f"Lucene indexed {stats['documents']} of {n} documents ({empty} empty) in {index_dir}")
    return stats


def bm25_search(index_dir: Path, queries: dict[str, str], k: int, k1: float, b: float,
                threads: int | None = None) -> Run:
    """Top-``k`` BM25 for every query."""
    searcher = autoclass("io.anserini.search.SimpleSearcher")(str(index_dir))
    try:
        searcher.set_bm25(float(k1), float(b))
        qids = list(queries)
        hits = batch_results(searcher.batch_search(java_list(queries[q] for q in qids), java_list(qids), int(k),
                                                   int(threads or default_threads())))
        return {qid: [(h.docid, float(h.score)) for h in hits.get(qid, [])] for qid in qids}
    finally:
        searcher.close()


def java_list(items: Iterable) -> object:
    """A ``java.util.ArrayList`` of ``items``."""
    out = autoclass("java.util.ArrayList")()
    for item in items:
        out.add(item)
    return out


def batch_results(results) -> dict:
    """An Anserini ``batch_search`` answer (a Java map of query id to ``ScoredDoc[]``) as a dict."""
    return {r.getKey(): r.getValue() for r in results.entrySet().toArray()}


class BM25PairScorer:
    """BM25 score of given (query, document) pairs, for documents outside a query's retrieved list."""

    def __init__(self, index_dir: Path, k1: float, b: float):
        # Anserini's IndexReaderUtils, as Pyserini's LuceneIndexReader.compute_query_document_score calls it
        self.utils = autoclass("io.anserini.index.IndexReaderUtils")
        self.reader = self.utils.getReader(str(index_dir))
        self.similarity = autoclass("org.apache.lucene.search.similarities.BM25Similarity")(float(k1), float(b))

    def score(self, query: str, doc_id: str) -> float:
        return float(self.utils.computeQueryDocumentScoreWithSimilarity(self.reader, doc_id, query, self.similarity))
