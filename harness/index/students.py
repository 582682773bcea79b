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
                 doc_max_len: "int | None" = None, approximate: bool = True) -> dict[str, Any]:
    """Encode ``texts`` (read up to ``doc_max_len`` tokens) and build the family's index in ``out``; returns
    figures. With ``approximate`` False no index is built: only what the exhaustive search reads is kept."""
    (out / "doc_ids.txt").write_text("\n".join(doc_ids) + "\n")
    t0 = time.perf_counter()
    reps = student.infer_docs(texts, doc_max_len)
    encode_seconds = time.perf_counter() - t0
    info: dict[str, Any] = {"documents": len(doc_ids), "doc_max_len": doc_max_len or student.doc_max_len,
                            "encode_seconds": round(encode_seconds, 2),
                            "docs_per_second": round(len(doc_ids) / max(encode_seconds, 1e-9), 1),
                            "search": "index" if approximate else "exact"}
    if family == "splade":
        from harness.index.impact import build_impact_index

        _save_sparse(out, reps)
        lengths = np.array([len(r) for r in reps])
        info.update(avg_doc_terms=round(float(lengths.mean()), 1), max_doc_terms=int(lengths.max()))
        if approximate:
            info.update(build_impact_index(doc_ids, reps, out / "index", cfg.impact.quantization))
    elif family == "colbert":
        from harness.index.plaid import build_plaid

        lengths = np.array([len(r) for r in reps])
        np.save(out / "doc_tokens.npy", np.concatenate(reps).astype(np.float16))
        np.save(out / "doc_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        info.update(avg_doc_tokens=round(float(lengths.mean()), 1), tokens=int(lengths.sum()))
        if approximate:
            built = build_plaid(list(reps), out / "index", nbits=cfg.plaid.nbits,
                                kmeans_niters=cfg.plaid.kmeans_niters)
            info.update(bytes_per_token=built["bytes_per_token"], index_bytes=built["bytes"],
                        index_seconds=built["seconds"])
    elif family == "dense":
        from harness.index.dense import build_dense_index, save_vectors

        vectors = np.stack(reps)
        info.update(build_dense_index(vectors, out / "index", cfg.faiss) if approximate
                    else save_vectors(vectors, out / "index"))
    else:  # pragma: no cover
        raise ValueError(family)
    return info


def _token_vectors(index_dir: Path) -> list[np.ndarray]:
    tokens = np.load(index_dir / "doc_tokens.npy").astype(np.float32)
    offsets = np.load(index_dir / "doc_offsets.npy")
    return [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def search_corpus(family: str, student, index_dir: Path, queries: dict[str, str], k: int, cfg,
                  exact: bool, query_max_len: "int | None" = None,
                  approximate: bool = True) -> tuple[Run, "Run | None", dict[str, Any]]:
    """(run, exact run or None, figures) for ``queries`` (read up to ``query_max_len`` tokens) against the
    index in ``index_dir``. With ``approximate`` False the run itself is the exhaustive search (no index was
    built) and ``exact`` is ignored."""
    qids = list(queries)
    t0 = time.perf_counter()
    q_reps = student.infer_queries([queries[q] for q in qids], query_max_len)
    figures: dict[str, Any] = {"query_encode_seconds": round(time.perf_counter() - t0, 3),
                               "query_max_len": query_max_len or student.query_max_len,
                               "search": "index" if approximate else "exact"}
    doc_ids = (index_dir / "doc_ids.txt").read_text().split("\n")[:-1]
    exact = exact and approximate
    searcher = None  # an open PLAID index, closed at the end
    time_one = None  # seconds for one query alone (default: the search below, one query at a time)

    def by_position(hits) -> Run:
        return {q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}

    if family == "splade":
        from harness.index.impact import ExactSparse, ImpactSearcher
        from harness.students.splade import flops_estimate

        doc_reps = _load_sparse(index_dir)
        figures["avg_query_terms"] = round(float(np.mean([len(r) for r in q_reps])), 1)
        figures["flops"] = round(flops_estimate(q_reps, doc_reps), 3)
        exhaustive = ExactSparse(doc_ids, doc_reps) if exact or not approximate else None
        if approximate:
            impact = ImpactSearcher(index_dir / "index", cfg.impact.quantization)
            search_some = lambda reps: impact.search(dict(zip(qids, reps)), k)  # noqa: E731
            time_one = lambda rep: impact.latencies({qids[0]: rep}, k)[0]  # noqa: E731  (one thread)
        else:
            search_some = lambda reps: exhaustive.search(dict(zip(qids, reps)), k)  # noqa: E731
        exact_all = (lambda: exhaustive.search(dict(zip(qids, q_reps)), k)) if exact else None
    elif family == "colbert":
        from harness.index.plaid import PlaidSearcher, exact_maxsim_search

        knobs = {"n_ivf_probe": cfg.plaid.n_ivf_probe, "n_full_scores": cfg.plaid.n_full_scores}
        docs = _token_vectors(index_dir) if exact or not approximate else None
        if approximate:
            searcher = PlaidSearcher(index_dir / "index")  # opened once: opening costs far more than a query
            search_some = lambda reps: by_position(searcher.search(reps, k, **knobs))  # noqa: E731
        else:
            search_some = lambda reps: by_position(exact_maxsim_search(reps, docs, k))  # noqa: E731
        exact_all = (lambda: by_position(exact_maxsim_search(q_reps, docs, k))) if exact else None
    elif family == "dense":
        from harness.index.dense import dense_search, load_vectors, top_k_dense

        vectors = load_vectors(index_dir / "index") if exact or not approximate else None
        if approximate:
            search_some = lambda reps: by_position(dense_search(index_dir / "index", np.stack(reps), k, cfg.faiss))  # noqa: E731
        else:
            search_some = lambda reps: by_position(top_k_dense(vectors, np.stack(reps), k))  # noqa: E731
        exact_all = (lambda: by_position(top_k_dense(vectors, np.stack(q_reps), k))) if exact else None
    else:  # pragma: no cover
        raise ValueError(family)
    if time_one is None:
        def time_one(rep) -> float:
            t1 = time.perf_counter()
            search_some([rep])
            return time.perf_counter() - t1
    try:
        t0 = time.perf_counter()
        run = search_some(q_reps)
        figures["search_seconds"] = round(time.perf_counter() - t0, 3)
        timed = q_reps[: cfg.latency_queries]
        if timed:
            time_one(timed[0])  # warm-up: first-query allocations are not latency
        lat = [time_one(r) for r in timed]
    finally:
        if searcher is not None:
            searcher.close()
    exact_run = exact_all() if exact_all is not None else None
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
