"""Dense students' index: FAISS, exact inner product (``IndexFlatIP``) or HNSW (``IndexHNSWFlat``, inner product).

The passage vectors are also kept as ``vectors.npy`` so an exhaustive search can measure what HNSW loses.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from harness.index.base import IndexWriter, NpyAppender, StudentIndex, top_k
from harness.registry import INDEXES


def build_dense_index(vectors: np.ndarray, index_dir: Path, cfg) -> dict:
    index_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors.astype(np.float32))
    np.save(index_dir / "vectors.npy", vectors)
    return faiss_index(vectors, index_dir, cfg)


def faiss_index(vectors: np.ndarray, index_dir: Path, cfg, block: int = 65536) -> dict:
    """``index_dir/faiss.index`` over ``vectors`` (an array or a memory map: added a block at a time)."""
    import faiss

    _open.pop(str(index_dir), None)
    t0 = time.perf_counter()
    dim = vectors.shape[1]
    if cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
    else:
        index = faiss.IndexFlatIP(dim)
    for start in range(0, vectors.shape[0], block):
        index.add(np.ascontiguousarray(vectors[start:start + block], dtype=np.float32))
    faiss.write_index(index, str(index_dir / "faiss.index"))
    size = (index_dir / "faiss.index").stat().st_size
    return {"documents": int(vectors.shape[0]), "dim": int(dim), "index_bytes": size,
            "index_seconds": round(time.perf_counter() - t0, 3), "faiss": cfg.kind}


_open: dict[str, object] = {}


def _index(index_dir: Path):
    import faiss

    key = str(index_dir)
    if key not in _open:
        _open[key] = faiss.read_index(str(index_dir / "faiss.index"))
    return _open[key]


def dense_search(index_dir: Path, queries: np.ndarray, k: int, cfg) -> list[list[tuple[int, float]]]:
    index = _index(index_dir)
    if cfg.kind == "hnsw":
        index.hnsw.efSearch = max(cfg.ef_search, k)
    scores, ids = index.search(np.ascontiguousarray(queries.astype(np.float32)), min(k, index.ntotal))
    # tolist() first: converting numpy scalars one by one was half of a batched search's time (k = 1000)
    return [[(i, s) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(ids.tolist(), scores.tolist())]


def save_vectors(vectors: np.ndarray, index_dir: Path) -> dict:
    """Keep the passage vectors only (no FAISS index): what :meth:`FaissIndex.exact` reads."""
    index_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors.astype(np.float32))
    np.save(index_dir / "vectors.npy", vectors)
    return {"documents": int(vectors.shape[0]), "dim": int(vectors.shape[1]), "index_bytes": vectors.nbytes,
            "faiss": None}


def load_vectors(index_dir: Path) -> np.ndarray:
    return np.load(index_dir / "vectors.npy")


# ---- the StudentIndex of the dense family ---------------------------------------------------------------


@INDEXES.register("dense")
class FaissIndex(StudentIndex):
    """Dense vectors: kept as ``index/vectors.npy`` for the exact inner product, and in a FAISS index (flat or
    HNSW, ``index/faiss.index``) when approximate."""

    family = "dense"

    @classmethod
    def write(cls, reps, out: Path, cfg, approximate: bool) -> dict:
        vectors = np.stack(reps)
        return build_dense_index(vectors, out / "index", cfg.faiss) if approximate else save_vectors(vectors, out / "index")

    @classmethod
    def writer(cls, out: Path, cfg, approximate: bool) -> "DenseWriter":
        return DenseWriter(cls, out, cfg, approximate)

    def __init__(self, directory: Path, cfg):
        super().__init__(directory, cfg)
        self._vectors: "np.ndarray | None" = None

    @staticmethod
    def exhaustive(q_reps, d_reps, k: int):
        return top_k(np.stack(q_reps).astype(np.float32) @ np.asarray(d_reps, dtype=np.float32).T, k)

    def search(self, q_reps, k: int):
        return dense_search(self.directory / "index", np.stack(q_reps), k, self.cfg.faiss)

    def exact(self, q_reps, k: int):
        if self._vectors is None:
            self._vectors = load_vectors(self.directory / "index")
        return self.exhaustive(q_reps, self._vectors, k)


class DenseWriter(IndexWriter):
    """Vectors appended to ``index/vectors.npy`` chunk by chunk; the FAISS index built from its memory map."""

    def __init__(self, backend, out: Path, cfg, approximate: bool):
        super().__init__(backend, out, cfg, approximate)
        self.rows = NpyAppender(self.out / "index" / "vectors.npy", np.float32)

    def add(self, reps) -> None:
        if len(reps):
            self.rows.append(np.stack(reps))

    def finish(self) -> dict:
        vectors = self.rows.finish()
        if self.approximate:
            return faiss_index(vectors, self.out / "index", self.cfg.faiss)
        return {"documents": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
                "index_bytes": int(vectors.shape[0] * vectors.shape[1] * 4), "faiss": None}
