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


def exact_sparse_search(doc_ids: Sequence[str], doc_reps: Sequence[dict[str, float]],
                        queries: dict[str, dict[str, float]], k: int) -> dict[str, list[tuple[str, float]]]:
    """Exhaustive dot products of the unquantised weights (scipy sparse)."""
    from scipy import sparse

    vocab: dict[str, int] = {}

    def matrix(reps: Sequence[dict[str, float]]):
        rows, cols, vals = [], [], []
        for i, rep in enumerate(reps):
            for term, w in rep.items():
                rows.append(i)
                cols.append(vocab.setdefault(term, len(vocab)))
                vals.append(w)
        return rows, cols, vals

    d_rows, d_cols, d_vals = matrix(doc_reps)
    qids = list(queries)
    q_rows, q_cols, q_vals = matrix([queries[q] for q in qids])
    n_terms = len(vocab)
    docs = sparse.csr_matrix((d_vals, (d_rows, d_cols)), shape=(len(doc_reps), n_terms), dtype=np.float32)
    qs = sparse.csr_matrix((q_vals, (q_rows, q_cols)), shape=(len(qids), n_terms), dtype=np.float32)
    scores = (qs @ docs.T).toarray()
    out = {}
    kk = min(k, len(doc_ids))
    for i, qid in enumerate(qids):
        row = scores[i]
        top = np.argpartition(-row, kk - 1)[:kk]
        top = top[np.argsort(-row[top], kind="stable")]
        out[qid] = [(doc_ids[j], float(row[j])) for j in top if row[j] > 0]
    return out
