"""Serving a trained student: encode the corpus into the family's index, then search it.

* SPLADE → Lucene impact index (:mod:`harness.index.impact`), exact sparse dot product beside it;
* ColBERT → PLAID through fast-plaid (:mod:`harness.index.plaid`), exact MaxSim beside it;
* dense → FAISS (:mod:`harness.index.dense`).

Each index stage also keeps what the exact search needs (sparse weights, token vectors), and the figures
users compare methods by: index size, bytes per token or terms per passage, passages encoded per second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.evaluate import Run


def _save_sparse(path: Path, reps: Sequence[dict[str, float]]) -> None:
    from scipy import sparse

    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, rep in enumerate(reps):
        for term, w in rep.items():
            rows.append(i)
            cols.append(vocab.setdefault(term, len(vocab)))
            vals.append(w)
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(reps), len(vocab)), dtype=np.float32)
    sparse.save_npz(path / "doc_weights.npz", matrix)
    (path / "terms.json").write_text(json.dumps(list(vocab)))


def _load_sparse(path: Path) -> list[dict[str, float]]:
    from scipy import sparse

    matrix = sparse.load_npz(path / "doc_weights.npz").tocsr()
    terms = json.loads((path / "terms.json").read_text())
    return [{terms[j]: float(v) for j, v in zip(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]],
                                                  matrix.data[matrix.indptr[i]:matrix.indptr[i + 1]])}
            for i in range(matrix.shape[0])]


def index_corpus(family: str, student, doc_ids: Sequence[str], texts: Sequence[str], out: Path, cfg,
                 doc_max_len: "int | None" = None) -> dict[str, Any]:
    """Encode ``texts`` (read up to ``doc_max_len`` tokens) and build the family's index in ``out``; returns
    figures."""
    (out / "doc_ids.txt").write_text("\n".join(doc_ids) + "\n")
    t0 = time.perf_counter()
    reps = student.infer_docs(texts, doc_max_len)
    encode_seconds = time.perf_counter() - t0
    info: dict[str, Any] = {"documents": len(doc_ids), "doc_max_len": doc_max_len or student.doc_max_len,
                            "encode_seconds": round(encode_seconds, 2),
                            "docs_per_second": round(len(doc_ids) / max(encode_seconds, 1e-9), 1)}
    if family == "splade":
        from harness.index.impact import build_impact_index

        _save_sparse(out, reps)
        lengths = np.array([len(r) for r in reps])
        info.update(avg_doc_terms=round(float(lengths.mean()), 1), max_doc_terms=int(lengths.max()))
        info.update(build_impact_index(doc_ids, reps, out / "index", cfg.impact.quantization))
    elif family == "colbert":
        from harness.index.plaid import build_plaid

        lengths = np.array([len(r) for r in reps])
        np.save(out / "doc_tokens.npy", np.concatenate(reps).astype(np.float16))
        np.save(out / "doc_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        built = build_plaid(list(reps), out / "index", nbits=cfg.plaid.nbits, kmeans_niters=cfg.plaid.kmeans_niters)
        info.update(avg_doc_tokens=round(float(lengths.mean()), 1), tokens=built["tokens"],
                    bytes_per_token=built["bytes_per_token"], index_bytes=built["bytes"],
                    index_seconds=built["seconds"])
    elif family == "dense":
        from harness.index.dense import build_dense_index

        info.update(build_dense_index(np.stack(reps), out / "index", cfg.faiss))
    else:  # pragma: no cover
        raise ValueError(family)
    return info


def search_corpus(family: str, student, index_dir: Path, queries: dict[str, str], k: int, cfg,
                  exact: bool, query_max_len: "int | None" = None) -> tuple[Run, "Run | None", dict[str, Any]]:
    """(approximate run, exact run or None, figures) for ``queries`` (read up to ``query_max_len`` tokens)
    against the index in ``index_dir``."""
    qids = list(queries)
    t0 = time.perf_counter()
    q_reps = student.infer_queries([queries[q] for q in qids], query_max_len)
    figures: dict[str, Any] = {"query_encode_seconds": round(time.perf_counter() - t0, 3),
                               "query_max_len": query_max_len or student.query_max_len}
    doc_ids = (index_dir / "doc_ids.txt").read_text().split("\n")[:-1]
    timed = qids[: cfg.latency_queries]
    if family == "splade":
        from harness.index.impact import ImpactSearcher, exact_sparse_search

        by_qid = dict(zip(qids, q_reps))
        figures["avg_query_terms"] = round(float(np.mean([len(r) for r in q_reps])), 1)
        searcher = ImpactSearcher(index_dir / "index", cfg.impact.quantization)
        t0 = time.perf_counter()
        run = searcher.search(by_qid, k)
        figures["search_seconds"] = round(time.perf_counter() - t0, 3)
        searcher.latencies({q: by_qid[q] for q in timed[:1]}, k)  # warm-up
        lat = searcher.latencies({q: by_qid[q] for q in timed}, k)
        exact_run = exact_sparse_search(doc_ids, _load_sparse(index_dir), by_qid, k) if exact else None
        from harness.students.splade import flops_estimate

        figures["flops"] = round(flops_estimate(q_reps, _load_sparse(index_dir)), 3)
    elif family == "colbert":
        from harness.index.plaid import PlaidSearcher, exact_maxsim_search

        knobs = {"n_ivf_probe": cfg.plaid.n_ivf_probe, "n_full_scores": cfg.plaid.n_full_scores}
        with PlaidSearcher(index_dir / "index") as searcher:  # opened once: opening costs far more than a query
            t0 = time.perf_counter()
            hits = searcher.search(q_reps, k, **knobs)
            figures["search_seconds"] = round(time.perf_counter() - t0, 3)
            lat = []
            searcher.search(q_reps[:1], k, **knobs)  # warm-up: first-query allocations are not latency
            for r in q_reps[: len(timed)]:
                t1 = time.perf_counter()
                searcher.search([r], k, **knobs)
                lat.append(time.perf_counter() - t1)
        run = {q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}
        exact_run = None
        if exact:
            tokens = np.load(index_dir / "doc_tokens.npy").astype(np.float32)
            offsets = np.load(index_dir / "doc_offsets.npy")
            docs = [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            ex = exact_maxsim_search(q_reps, docs, k)
            exact_run = {q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, ex)}
    elif family == "dense":
        from harness.index.dense import dense_search, exact_dense_search

        q = np.stack(q_reps)
        t0 = time.perf_counter()
        hits = dense_search(index_dir / "index", q, k, cfg.faiss)
        figures["search_seconds"] = round(time.perf_counter() - t0, 3)
        run = {qid: [(doc_ids[i], s) for i, s in h] for qid, h in zip(qids, hits)}
        lat = []
        for row in q[: len(timed)]:
            t1 = time.perf_counter()
            dense_search(index_dir / "index", row[None], k, cfg.faiss)
            lat.append(time.perf_counter() - t1)
        exact_run = None
        if exact:
            ex = exact_dense_search(index_dir / "index", q, k)
            exact_run = {qid: [(doc_ids[i], s) for i, s in h] for qid, h in zip(qids, ex)}
    else:  # pragma: no cover
        raise ValueError(family)
    if lat:
        figures["latency_ms_p50"] = round(float(np.percentile(lat, 50)) * 1000, 2)
        figures["latency_ms_p95"] = round(float(np.percentile(lat, 95)) * 1000, 2)
        figures["latency_queries"] = len(lat)
    return run, exact_run, figures


def overlap_at_k(approx: Run, exact: Run, k: int) -> float:
    """Mean over queries of |top-k(approx) ∩ top-k(exact)| / k: what the approximate index loses."""
    vals = []
    for qid, hits in exact.items():
        want = {d for d, _ in hits[:k]}
        if not want:
            continue
        got = {d for d, _ in approx.get(qid, [])[:k]}
        vals.append(len(want & got) / len(want))
    return float(np.mean(vals)) if vals else 1.0
