"""PLAID indexes for ColBERT token vectors through fast-plaid (LightOn's Rust engine), and exact MaxSim.

PLAID (Santhanam et al., CIKM 2022) clusters every document token vector with k-means; a token is stored
as its centroid id plus an ``nbits``-per-dimension quantised residual (ColBERTv2's compression). A search
probes the ``n_ivf_probe`` nearest centroids per query token for candidate documents, prunes them with
centroid-only scores, and ranks the best ``n_full_scores`` with MaxSim over decompressed vectors:

    s(q, d) = Σ_i max_j q_i · d̃_j          d̃_j = centroid(d_j) + residual(d_j)  (approximate)

:func:`exact_maxsim_search` scores every document with the true vectors (small corpora; what the approximate
index loses is :func:`harness.index.base.overlap_at_k`). :class:`PlaidIndex` is the family's
:class:`~harness.index.base.StudentIndex`.

fast-plaid is imported inside the functions: it pins one exact torch and loads native code at import.
Its index directory is rebuilt from scratch by :func:`build_plaid` (``start_from_scratch=0``: no raw copy
of the embeddings is kept for later in-place updates, which the harness never makes, so the bytes on disk
are the index's own).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from harness.index.base import Hits, IndexWriter, NpyAppender, StudentIndex
from harness.registry import INDEXES



def _device(device: "str | None") -> str:
    if device is not None:
        return device
    from harness.encoding import device_name

    return device_name()


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if not arr.flags.writeable:  # a read-only memory map (streamed token vectors): torch wants its own copy
        arr = arr.copy()
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"token vectors must be a non-empty (tokens × dim) array, got shape {arr.shape}")
    return torch.from_numpy(arr)


def disk_bytes(index_dir: Path) -> int:
    return sum(p.stat().st_size for p in Path(index_dir).rglob("*") if p.is_file())


def build_plaid(doc_embeddings: Sequence[np.ndarray], index_dir: Path, nbits: int = 4, kmeans_niters: int = 4,
                seed: int = 42, device: "str | None" = None) -> dict:
    """Index one (T_i × dim) float array per document (its position is its id in search results).

    Returns ``documents``, ``tokens``, ``dim``, ``bytes`` (on disk), ``bytes_per_token``, ``seconds``."""
    from fast_plaid import search

    if not doc_embeddings:
        raise ValueError("cannot build a PLAID index over no documents")
    docs = [_as_tensor(d) for d in doc_embeddings]
    dims = {d.shape[1] for d in docs}
    if len(dims) != 1:
        raise ValueError(f"documents have token vectors of different sizes: {sorted(dims)}")
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    index = search.FastPlaid(index=str(index_dir), device=_device(device))
    try:
        index.create(documents_embeddings=docs, nbits=nbits, kmeans_niters=kmeans_niters, seed=seed,
                     start_from_scratch=0)
    finally:
        index.close()
    seconds = time.perf_counter() - start
    tokens = sum(d.shape[0] for d in docs)
    size = disk_bytes(index_dir)
    return {"documents": len(docs), "tokens": tokens, "dim": dims.pop(), "nbits": nbits, "bytes": size,
            "bytes_per_token": size / tokens, "seconds": round(seconds, 3)}


class PlaidSearcher:
    """An open PLAID index. Opening one costs far more than a query (measured on 2 CPU cores, 2,000
    documents: 0.4–7 s to open, ~55 ms a query), so time queries against an open searcher::

        with PlaidSearcher(index_dir) as searcher:
            hits = searcher.search(query_embeddings, k=10)
    """

    def __init__(self, index_dir: Path, device: "str | None" = None):
        from fast_plaid import search

        if not (Path(index_dir) / "metadata.json").is_file():
            raise FileNotFoundError(f"no PLAID index in {index_dir} (metadata.json missing)")
        self.index = search.FastPlaid(index=str(index_dir), device=_device(device))

    def search(self, query_embeddings: Sequence[np.ndarray], k: int, n_ivf_probe: int = 8,
               n_full_scores: int = 4096, batch_size: int = 512) -> Hits:
        out: Hits = []
        for start in range(0, len(query_embeddings), batch_size):
            queries = [_as_tensor(q) for q in query_embeddings[start:start + batch_size]]
            hits = self.index.search(queries_embeddings=queries, top_k=k, n_ivf_probe=n_ivf_probe,
                                     n_full_scores=n_full_scores, show_progress=False)
            out.extend([(int(doc), float(score)) for doc, score in row] for row in hits)
        return out

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "PlaidSearcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plaid_search(index_dir: Path, query_embeddings: Sequence[np.ndarray], k: int, n_ivf_probe: int = 8,
                 n_full_scores: int = 4096, batch_size: int = 512, device: "str | None" = None) -> Hits:
    """Top-``k`` documents (positions in the indexed list, best first) with their approximate MaxSim, for
    each (T × dim) query array. ``batch_size`` queries go to fast-plaid per call (fast-plaid plans its own
    scoring chunks from the device's memory). Opens the index for this call: see :class:`PlaidSearcher`."""
    with PlaidSearcher(index_dir, device) as searcher:
        return searcher.search(query_embeddings, k, n_ivf_probe, n_full_scores, batch_size)


MIN_BLOCK_TOKENS, MAX_BLOCK_TOKENS = 4096, 1 << 16


def exact_maxsim_search(query_embeddings: Sequence[np.ndarray], doc_embeddings: Sequence[np.ndarray], k: int,
                        budget: int = 1 << 25, device: "str | None" = None) -> Hits:
    """Exhaustive MaxSim of every query against every document, top-``k`` best first (ties: lower
    position first). Documents are taken in blocks of similar length (sorted by token count, so little of a
    block is padding); one product scores all query tokens against a block's tokens (about ``budget``
    query-token × document-token scores at once), then the max over each document's tokens and the sum
    over each query's tokens. fp32 throughout, so the scores do not depend on the CPU's bf16 support.

    Measured on 2 CPU cores (SciFact: 5,183 passages, 1.1M token vectors of 128 dims; 300 queries of 32
    tokens): 25-27 s, against 350-800 s to build a PLAID index over the same vectors."""
    if not query_embeddings:
        return []
    if not doc_embeddings:
        return [[] for _ in query_embeddings]
    q_len = max(q.shape[0] for q in query_embeddings)
    per_call = max(1, budget // (MIN_BLOCK_TOKENS * q_len))  # queries scored together: blocks stay ≥ 4096 tokens
    if len(query_embeddings) > per_call:
        return [hits for s in range(0, len(query_embeddings), per_call)
                for hits in exact_maxsim_search(query_embeddings[s:s + per_call], doc_embeddings, k, budget, device)]
    dev = torch.device(_device(device))
    k = min(k, len(doc_embeddings))
    queries = torch.nn.utils.rnn.pad_sequence([_as_tensor(q) for q in query_embeddings], batch_first=True).to(dev)
    n_q, q_len, dim = queries.shape
    q_lengths = torch.tensor([q.shape[0] for q in query_embeddings], device=dev)
    q_pad = (torch.arange(q_len, device=dev)[None, :] >= q_lengths[:, None])  # (n_q, q_len)
    flat_q = queries.reshape(n_q * q_len, dim)
    lengths = np.array([d.shape[0] for d in doc_embeddings])
    order = np.argsort(lengths, kind="stable")
    block_tokens = max(1, min(MAX_BLOCK_TOKENS, budget // (n_q * q_len)))  # the padded block: ≤ 32 MB at 128 dims
    scores = torch.empty(n_q, len(doc_embeddings))
    with torch.inference_mode():
        start = 0
        while start < len(order):
            end = start + 1  # grow the block while (documents × its longest length) fits the budget
            while end < len(order) and (end - start + 1) * lengths[order[end]] <= block_tokens:
                end += 1
            ids = order[start:end]
            block = torch.nn.utils.rnn.pad_sequence([_as_tensor(doc_embeddings[i]) for i in ids],
                                                    batch_first=True).to(dev)  # (B, T, dim)
            n_b, t = block.shape[:2]
            d_pad = torch.arange(t, device=dev)[None, :] >= torch.as_tensor(lengths[ids], device=dev)[:, None]
            sim = (flat_q @ block.reshape(n_b * t, dim).T).view(n_q * q_len, n_b, t)
            best = sim.masked_fill_(d_pad[None], float("-inf")).amax(dim=2).view(n_q, q_len, n_b)
            scores[:, torch.from_numpy(ids)] = best.masked_fill_(q_pad[:, :, None], 0.0).sum(dim=1).float().cpu()
            start = end
    values, order_t = torch.sort(scores, dim=1, descending=True, stable=True)
    return [list(zip(o[:k].tolist(), v[:k].tolist())) for o, v in zip(order_t, values)]


# ---- the StudentIndex of the ColBERT family --------------------------------------------------------------


@INDEXES.register("colbert")
class PlaidIndex(StudentIndex):
    """ColBERT token vectors: kept as float16 (``doc_tokens.npy`` + ``doc_offsets.npy``) for exact MaxSim, and
    PLAID-indexed (``index/``) when approximate."""

    family = "colbert"

    @classmethod
    def writer(cls, out: Path, cfg, approximate: bool) -> "PlaidWriter":
        return PlaidWriter(cls, out, cfg, approximate)

    @classmethod
    def write(cls, reps, out: Path, cfg, approximate: bool) -> dict:
        lengths = np.array([len(r) for r in reps])
        np.save(out / "doc_tokens.npy", np.concatenate(reps).astype(np.float16))
        np.save(out / "doc_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        info = {"avg_doc_tokens": round(float(lengths.mean()), 1), "tokens": int(lengths.sum())}
        if approximate:
            built = build_plaid(list(reps), out / "index", nbits=cfg.plaid.nbits, kmeans_niters=cfg.plaid.kmeans_niters)
            info.update(bytes_per_token=built["bytes_per_token"], index_bytes=built["bytes"],
                        index_seconds=built["seconds"])
        return info

    def __init__(self, directory: Path, cfg):
        super().__init__(directory, cfg)
        self._plaid: "PlaidSearcher | None" = None
        self._docs: "list[np.ndarray] | None" = None

    @staticmethod
    def exhaustive(q_reps, d_reps, k: int) -> Hits:
        return exact_maxsim_search(q_reps, d_reps, k)

    def search(self, q_reps, k: int) -> Hits:
        if self._plaid is None:  # opened once: opening costs far more than a query
            self._plaid = PlaidSearcher(self.directory / "index")
        return self._plaid.search(q_reps, k, n_ivf_probe=self.cfg.plaid.n_ivf_probe,
                                  n_full_scores=self.cfg.plaid.n_full_scores)

    def exact(self, q_reps, k: int) -> Hits:
        if self._docs is None:
            tokens = np.load(self.directory / "doc_tokens.npy").astype(np.float32)
            offsets = np.load(self.directory / "doc_offsets.npy")
            self._docs = [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        return exact_maxsim_search(q_reps, self._docs, k)

    def close(self) -> None:
        if self._plaid is not None:
            self._plaid.close()
            self._plaid = None


class PlaidWriter(IndexWriter):
    """Token vectors appended to ``doc_tokens.npy`` (float16, what exact MaxSim reads) chunk by chunk; for
    PLAID also to a float32 scratch file, memory-mapped when the index is built from it (the vectors the
    encoder gave, as before streaming; fast-plaid then holds what its k-means and compression need)."""

    def __init__(self, backend, out: Path, cfg, approximate: bool):
        super().__init__(backend, out, cfg, approximate)
        self.tokens = NpyAppender(self.out / "doc_tokens.npy", np.float16)
        self.full = NpyAppender(self.out / "plaid_input.npy", np.float32) if approximate else None
        self.lengths: list[int] = []

    def add(self, reps) -> None:
        if len(reps):
            block = np.concatenate(reps)
            self.tokens.append(block)
            if self.full is not None:
                self.full.append(block)
            self.lengths.extend(len(r) for r in reps)

    def finish(self) -> dict:
        self.tokens.finish()
        lengths = np.array(self.lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        np.save(self.out / "doc_offsets.npy", offsets)
        info = {"avg_doc_tokens": round(float(lengths.mean()), 1), "tokens": int(lengths.sum())}
        if self.full is not None:
            full = self.full.finish()
            docs = [full[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]
            built = build_plaid(docs, self.out / "index", nbits=self.cfg.plaid.nbits,
                                kmeans_niters=self.cfg.plaid.kmeans_niters)
            del docs, full
            (self.out / "plaid_input.npy").unlink()
            info.update(bytes_per_token=built["bytes_per_token"], index_bytes=built["bytes"],
                        index_seconds=built["seconds"])
        return info
