"""One interface over the students' indexes (PyLate's ``indexes/base.py`` is the model).

Every family's index — Lucene impacts (SPLADE), PLAID (ColBERT), FAISS (dense) — is a
:class:`StudentIndex` registered in :data:`harness.registry.INDEXES` under the family it serves. The
pipeline (:mod:`harness.index.students`) and re-mining (:mod:`harness.distill.remine`) only talk to this
interface:

* ``write(reps, out, cfg, approximate)`` keeps what an exhaustive search reads (sparse weights, token
  vectors, vectors) and, when ``approximate``, builds the index; returns figures;
* ``writer(out, cfg, approximate)``: the same, fed chunk by chunk (``add(reps)``, then ``finish()``), so a
  corpus is encoded and written in parts and never held whole (the shipped backends stream to disk; the
  default keeps the chunks and calls ``write`` once);
* ``open(out, cfg)`` then ``search(q_reps, k)`` (the index) / ``exact(q_reps, k)`` (every passage scored);
* ``exhaustive(q_reps, d_reps, k)``: the exact search over representations in memory (re-mining).

Results are :data:`Hits`: per query, (position of the passage in the indexed order, score), best first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

Hits = list[list[tuple[int, float]]]


class StudentIndex:
    family: ClassVar[str]  # the student family whose representations it holds

    def __init__(self, directory: Path, cfg):
        self.directory, self.cfg = Path(directory), cfg

    @classmethod
    def write(cls, reps: Sequence[Any], out: Path, cfg, approximate: bool) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def writer(cls, out: Path, cfg, approximate: bool) -> "IndexWriter":
        return IndexWriter(cls, out, cfg, approximate)

    @classmethod
    def open(cls, directory: Path, cfg) -> "StudentIndex":
        return cls(directory, cfg)

    @staticmethod
    def exhaustive(q_reps: Sequence[Any], d_reps: Sequence[Any], k: int) -> Hits:
        raise NotImplementedError

    def search(self, q_reps: Sequence[Any], k: int) -> Hits:
        raise NotImplementedError

    def exact(self, q_reps: Sequence[Any], k: int) -> Hits:
        raise NotImplementedError

    def time_one(self, rep: Any, k: int, approximate: bool = True) -> float:
        """Seconds to answer one query alone."""
        t0 = time.perf_counter()
        (self.search if approximate else self.exact)([rep], k)
        return time.perf_counter() - t0

    def figures(self, q_reps: Sequence[Any]) -> dict[str, Any]:
        """Family figures of a set of queries against this index (e.g. SPLADE's FLOPS)."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self) -> "StudentIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IndexWriter:
    """A corpus's representations, chunk by chunk. This default keeps them all and calls the backend's
    ``write`` at the end (a plug-in backend that cannot stream); the shipped backends override it."""

    def __init__(self, backend: "type[StudentIndex]", out: Path, cfg, approximate: bool):
        self.backend, self.out, self.cfg, self.approximate = backend, Path(out), cfg, approximate
        self.reps: list[Any] = []

    def ids(self, doc_ids: Sequence[str]) -> None:
        """The passage ids of the next :meth:`add`, in order, for a backend whose index stores them (so that it
        can be served without the harness); by default unused: the harness maps positions to ids itself
        (``doc_ids.txt`` beside the index)."""

    def add(self, reps: Sequence[Any]) -> None:
        self.reps.extend(reps)

    def finish(self) -> dict[str, Any]:
        return self.backend.write(self.reps, self.out, self.cfg, self.approximate)


class NpyAppender:
    """A 1-d or 2-d array written to ``path`` (.npy) block of rows by block of rows, never held whole: the rows
    go to ``path.rows`` raw, then ``finish`` writes the header (as ``np.save`` would) and moves them behind
    it."""

    def __init__(self, path: Path, dtype, ndim: int = 2):
        self.path, self.dtype, self.ndim = Path(path), np.dtype(dtype), ndim
        self.raw = self.path.with_name(self.path.name + ".rows")
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.raw, "wb")
        self.rows, self.width = 0, None

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != self.ndim or (self.ndim == 2 and self.width is not None and block.shape[1] != self.width):
            want = f"rows of width {self.width}" if self.ndim == 2 else "a 1-d block"
            raise ValueError(f"expected {want}, got shape {block.shape}")
        if self.ndim == 2:
            self.width = block.shape[1]
        self.fh.write(block.tobytes())
        self.rows += block.shape[0]

    def finish(self) -> np.ndarray:
        """The written array, memory-mapped."""
        import shutil

        self.fh.close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, self.width or 0) if self.ndim == 2 else (self.rows,)}
        with open(self.path, "wb") as out, open(self.raw, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 16 << 20)
        self.raw.unlink()
        return np.load(self.path, mmap_mode="r")


def top_k(scores: np.ndarray, k: int, keep=None) -> Hits:
    """Per row of a (queries × passages) score matrix, the top-``k`` (position, score), best first; ties go
    to the lower position. ``keep(score) -> bool`` drops entries (e.g. zero sparse scores)."""
    kk = min(k, scores.shape[1])
    out: Hits = []
    if kk == 0:
        return [[] for _ in range(scores.shape[0])]
    for row in scores:
        top = np.argpartition(-row, kk - 1)[:kk]
        top = top[np.lexsort((top, -row[top]))]
        vals = row[top]
        out.append([(i, v) for i, v, raw in zip(top.tolist(), vals.tolist(), vals) if keep is None or keep(raw)])
    return out


def overlap_at_k(approx: "Mapping | Sequence", exact: "Mapping | Sequence", k: int) -> float:
    """Mean over queries of |top-k approximate ∩ top-k exact| / |top-k exact| (runs by query id, or hit lists
    aligned by position); queries whose exact list is empty are skipped; 1.0 when none is left."""
    if isinstance(exact, Mapping):
        pairs = [(approx.get(q, []), hits) for q, hits in exact.items()]  # type: ignore[union-attr]
    else:
        if len(approx) != len(exact):
            raise ValueError(f"{len(approx)} approximate result lists for {len(exact)} exact ones")
        pairs = list(zip(approx, exact))
    vals = []
    for a, e in pairs:
        want = {d for d, _ in e[:k]}
        if want:
            vals.append(len({d for d, _ in a[:k]} & want) / len(want))
    return float(np.mean(vals)) if vals else 1.0
