"""SPLADE's index: a Lucene impact index through Pyserini, and an exact sparse dot product beside it.

Lucene impacts are integers (a query weight goes through ``JInt``: 0.9 becomes 0; document weights are
truncated), so weights are quantised: impact = round(w × q) with q = ``index.impact.quantization``
(default 100, as in Pyserini's SPLADE recipes). Documents become a ``JsonVectorCollection``
(``{"id", "contents": "", "vector": {term: impact}}``) indexed with ``-impact -pretokenized``; queries
are searched with ``LuceneImpactSearcher`` with ``min_idf=-1`` (a term with idf ≤ min_idf would be
dropped, which matters on small corpora). The exact search multiplies the unquantised weights, so the
two runs show what quantisation and Lucene's top-k cost.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.index.lucene import default_threads
from harness.java import autoclass, start_jvm


def quantize(weights: dict[str, float], scale: int) -> dict[str, int]:
    out = {}
    for term, w in weights.items():
        q = int(round(w * scale))
        if q > 0:
            out[term] = q
    return out


def build_impact_index(doc_ids: Sequence[str], reps: Sequence[dict[str, float]], index_dir: Path, scale: int,
                       threads: "int | None" = None) -> dict:
    start_jvm()
    work = index_dir.parent / (index_dir.name + ".collection")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(work / "docs.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, rep in zip(doc_ids, reps):
            fh.write(json.dumps({"id": doc_id, "contents": "", "vector": quantize(rep, scale)}, ensure_ascii=False) + "\n")
    args = ["-collection", "JsonVectorCollection", "-input", str(work), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads or default_threads()),
            "-impact", "-pretokenized", "-quiet"]
    autoclass("io.anserini.index.IndexCollection").main(args)
    shutil.rmtree(work, ignore_errors=True)
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    return {"documents": len(doc_ids), "index_bytes": size, "index_seconds": round(time.perf_counter() - t0, 2)}


class _Precomputed:
    """A 'query encoder' for LuceneImpactSearcher that returns weights computed beforehand (by query id)."""

    def __init__(self, by_qid: dict[str, dict[str, int]]):
        self.by_qid = by_qid

    def encode(self, qid: str) -> dict[str, int]:
        return self.by_qid[qid]


class ImpactSearcher:
    def __init__(self, index_dir: Path, scale: int):
        start_jvm()
        from pyserini.search.lucene import LuceneImpactSearcher

        self.scale = scale
        self.encoder = _Precomputed({})
        self.searcher = LuceneImpactSearcher(str(index_dir), self.encoder, min_idf=-1)

    def search(self, queries: dict[str, dict[str, float]], k: int,
               threads: "int | None" = None) -> dict[str, list[tuple[str, float]]]:
        self.encoder.by_qid = {qid: quantize(rep, self.scale) for qid, rep in queries.items()}
        qids = list(queries)
        hits = self.searcher.batch_search(qids, qids, k=k, threads=threads or default_threads())
        return {qid: [(h.docid, float(h.score) / (self.scale * self.scale)) for h in hits.get(qid, [])]
                for qid in qids}

    def latencies(self, queries: dict[str, dict[str, float]], k: int) -> list[float]:
        """Seconds per query, one query at a time (single thread)."""
        out = []
        for qid, rep in queries.items():
            self.encoder.by_qid = {qid: quantize(rep, self.scale)}
            t0 = time.perf_counter()
            self.searcher.search(qid, k=k)
            out.append(time.perf_counter() - t0)
        return out


class ExactSparse:
    """Exhaustive dot products of the unquantised weights (scipy sparse), the passages' matrix built once."""

    def __init__(self, doc_ids: Sequence[str], doc_reps: Sequence[dict[str, float]]):
        from scipy import sparse

        self.doc_ids = list(doc_ids)
        self.vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for i, rep in enumerate(doc_reps):
            for term, w in rep.items():
                rows.append(i)
                cols.append(self.vocab.setdefault(term, len(self.vocab)))
                vals.append(w)
        self.docs_t = sparse.csr_matrix((vals, (rows, cols)), shape=(len(self.doc_ids), len(self.vocab)),
                                        dtype=np.float32).T.tocsr()

    def search(self, queries: dict[str, dict[str, float]], k: int) -> dict[str, list[tuple[str, float]]]:
        from scipy import sparse

        qids = list(queries)
        rows, cols, vals = [], [], []
        for i, qid in enumerate(qids):
            for term, w in queries[qid].items():
                j = self.vocab.get(term)
                if j is not None:  # a term no passage has adds nothing
                    rows.append(i)
                    cols.append(j)
                    vals.append(w)
        qs = sparse.csr_matrix((vals, (rows, cols)), shape=(len(qids), len(self.vocab)), dtype=np.float32)
        scores = (qs @ self.docs_t).toarray()
        out = {}
        kk = min(k, len(self.doc_ids))
        for i, qid in enumerate(qids):
            row = scores[i]
            top = np.argpartition(-row, kk - 1)[:kk]
            top = top[np.argsort(-row[top], kind="stable")]
            out[qid] = [(self.doc_ids[j], float(row[j])) for j in top if row[j] > 0]
        return out


def exact_sparse_search(doc_ids: Sequence[str], doc_reps: Sequence[dict[str, float]],
                        queries: dict[str, dict[str, float]], k: int) -> dict[str, list[tuple[str, float]]]:
    """Exhaustive dot products of the unquantised weights (scipy sparse)."""
    return ExactSparse(doc_ids, doc_reps).search(queries, k)
