"""SPLADE's index: a Lucene impact index through Pyserini, and an exact sparse dot product beside it.

Lucene impacts are integers (a query weight goes through ``JInt``: 0.9 becomes 0; document weights are
truncated), so weights are quantised: impact = round(w × q) with q = ``index.impact.quantization``
(default 100, as in Pyserini's SPLADE recipes). Documents become a ``JsonVectorCollection``
(``{"id", "contents": "", "vector": {term: impact}}``) indexed with ``-impact -pretokenized``; queries
are searched with Anserini's ``SimpleImpactSearcher``, the Java class Pyserini's ``LuceneImpactSearcher``
wraps, called directly with the quantised weights (as ``LuceneImpactSearcher`` with ``min_idf=-1`` sends
them; importing it would import ``pyserini.encode``, seconds a process, see :mod:`harness.index.lucene`;
tests/test_lucene.py checks both give the same run). The exact search multiplies the unquantised weights,
so the two runs show what quantisation and Lucene's top-k cost.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.index.base import Hits, IndexWriter, NpyAppender, StudentIndex, top_k
from harness.index.lucene import batch_results, default_threads, java_list
from harness.java import autoclass, start_jvm
from harness.registry import INDEXES


def quantize(weights: dict[str, float], scale: int) -> dict[str, int]:
    out = {}
    for term, w in weights.items():
        q = int(round(w * scale))
        if q > 0:
            out[term] = q
    return out


class ImpactCollection:
    """Pyserini's ``JsonVectorCollection`` (one JSON line per passage, quantised weights), written as the
    passages come."""

    def __init__(self, folder: Path, scale: int):
        self.folder, self.scale, self.documents = Path(folder), scale, 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.folder / "docs.jsonl", "w", encoding="utf-8")

    def add(self, doc_ids: Sequence[str], reps: Sequence[dict[str, float]]) -> None:
        for doc_id, rep in zip(doc_ids, reps):
            self.fh.write(json.dumps({"id": doc_id, "contents": "", "vector": quantize(rep, self.scale)},
                                     ensure_ascii=False) + "\n")
        self.documents += len(reps)

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "ImpactCollection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def index_collection(work: Path, index_dir: Path, threads: "int | None" = None) -> dict:
    """Lucene impact index of a written collection (then removed)."""
    start_jvm()
    t0 = time.perf_counter()
    documents = sum(1 for _ in open(work / "docs.jsonl", encoding="utf-8"))
    args = ["-collection", "JsonVectorCollection", "-input", str(work), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads or default_threads()),
            "-impact", "-pretokenized", "-quiet"]
    autoclass("io.anserini.index.IndexCollection").main(args)
    shutil.rmtree(work, ignore_errors=True)
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    return {"documents": documents, "index_bytes": size, "index_seconds": round(time.perf_counter() - t0, 2)}


LUCENE_IDS = "lucene_ids"  # marker beside index/: its documents are the passages' own ids, not positions
MAX_CLAUSES = 1 << 16  # query terms a search may have (the vocabulary is 30,522)


class _Precomputed:
    """A 'query encoder' for Pyserini's LuceneImpactSearcher that returns weights computed beforehand (by query
    id): how the benchmark searches the harness's index through Pyserini itself."""

    def __init__(self, by_qid: dict[str, dict[str, int]]):
        self.by_qid = by_qid

    def encode(self, qid: str) -> dict[str, int]:
        return self.by_qid[qid]


def index_terms(index_dir: Path) -> "set[str]":
    """Every term of a Lucene index (Anserini's ``IndexReaderUtils.getTerms``, as Pyserini's
    ``LuceneIndexReader.terms`` reads them)."""
    utils = autoclass("io.anserini.index.IndexReaderUtils")
    reader = utils.getReader(str(index_dir))
    try:
        terms, it = set(), utils.getTerms(reader)
        while it.hasNext():
            terms.add(it.next().getTerm())
        return terms
    finally:
        reader.close()


class ImpactSearcher:
    def __init__(self, index_dir: Path, scale: int):
        self.scale = scale
        # a SPLADE query is one clause per term, and an expanded (or barely sparsified) query can have more than
        # Lucene's default 1,024: the whole batch search would fail (TooManyClauses)
        autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_CLAUSES)
        self.searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(index_dir))
        self._map, self._int = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
        self.terms = index_terms(index_dir)

    def _weights(self, rep: dict[str, float]) -> dict[str, int]:
        """The quantised weights of the terms the index has (as ``LuceneImpactSearcher`` with ``min_idf=-1``
        keeps them): a term no passage has matches nothing, but as a clause it still costs Lucene time."""
        return {t: w for t, w in quantize(rep, self.scale).items() if t in self.terms}

    def _query(self, rep: dict[str, int]):
        query = self._map()
        for term, impact in rep.items():
            query.put(term, self._int(impact))
        return query

    def search(self, queries: dict[str, dict[str, float]], k: int,
               threads: "int | None" = None) -> dict[str, list[tuple[str, float]]]:
        by_qid = {qid: self._weights(rep) for qid, rep in queries.items()}
        qids = list(queries)
        # a query with no term left after quantisation (or none the index has) matches nothing: it is not sent
        # to Lucene at all
        asked = [q for q in qids if by_qid[q]]
        hits = batch_results(self.searcher.batch_search(java_list(self._query(by_qid[q]) for q in asked),
                                                        java_list(asked), int(k),
                                                        int(threads or default_threads()))) if asked else {}
        return {qid: [(h.docid, float(h.score) / (self.scale * self.scale)) for h in hits.get(qid, [])]
                for qid in qids}

    def latencies(self, queries: dict[str, dict[str, float]], k: int) -> list[float]:
        """Seconds per query, one query at a time (single thread)."""
        out = []
        for qid, rep in queries.items():
            t0 = time.perf_counter()
            weights = self._weights(rep)
            if weights:
                self.searcher.search(self._query(weights), int(k))
            out.append(time.perf_counter() - t0)
        return out


def _csr(reps: Sequence[dict[str, float]], vocab: dict[str, int], grow: bool):
    """(len(reps) × len(vocab)) float32 CSR of term weights; ``grow`` adds unseen terms to ``vocab``, else a
    term outside it is dropped (it can match nothing)."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for i, rep in enumerate(reps):
        for term, w in rep.items():
            j = vocab.setdefault(term, len(vocab)) if grow else vocab.get(term)
            if j is not None:
                rows.append(i)
                cols.append(j)
                vals.append(w)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(reps), len(vocab)), dtype=np.float32)


# The unquantised weights, a CSR matrix in three .npy files (written in parts, never held whole; memory-mapped
# when read) and its term list; indexes written before streaming hold one ``doc_weights.npz`` instead.
CSR_FILES = {"data": "doc_weights.data.npy", "indices": "doc_weights.indices.npy", "indptr": "doc_weights.indptr.npy"}


def _load_matrix(path: Path):
    """(passages × terms) CSR of the unquantised weights, and the terms of its columns."""
    from scipy import sparse

    terms = json.loads((path / "terms.json").read_text())
    if (path / "doc_weights.npz").exists():
        return sparse.load_npz(path / "doc_weights.npz").tocsr(), terms
    data, indices, indptr = (np.load(path / CSR_FILES[k], mmap_mode="r") for k in ("data", "indices", "indptr"))
    return sparse.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, len(terms))), terms


def _term_doc_counts(path: Path) -> tuple[dict[str, int], int]:
    """Each term's number of passages, and the number of passages (read from the CSR's column indices)."""
    matrix, terms = _load_matrix(path)
    counts = np.zeros(len(terms), dtype=np.int64)
    step = 1 << 24
    for i in range(0, matrix.indices.shape[0], step):  # in slices: a memory-mapped array is not read whole
        counts += np.bincount(matrix.indices[i:i + step], minlength=len(terms))
    return {t: int(c) for t, c in zip(terms, counts) if c}, matrix.shape[0]


class ExactSparse:
    """Exhaustive dot products of the unquantised weights (scipy sparse), over a (passages × terms) matrix
    built once."""

    def __init__(self, docs, terms: Sequence[str]):
        self.vocab = {t: j for j, t in enumerate(terms)}
        self.docs_t = docs.T.tocsr()

    @classmethod
    def from_reps(cls, doc_reps: Sequence[dict[str, float]]) -> "ExactSparse":
        vocab: dict[str, int] = {}
        docs = _csr(doc_reps, vocab, grow=True)
        return cls(docs, list(vocab))

    def search(self, queries: Sequence[dict[str, float]], k: int) -> Hits:
        """Top-``k`` (position, score) per query; passages sharing no term with the query are left out."""
        qs = _csr(queries, self.vocab, grow=False)
        return top_k((qs @ self.docs_t).toarray(), k, keep=lambda score: score > 0)


@INDEXES.register("splade")
class ImpactIndex(StudentIndex):
    """SPLADE weights: kept unquantised (:data:`CSR_FILES`, ``terms.json``) for the exact sparse product, and
    in a Lucene impact index (``index/``) when approximate."""

    family = "splade"

    @classmethod
    def writer(cls, out: Path, cfg, approximate: bool) -> "ImpactWriter":
        return ImpactWriter(cls, out, cfg, approximate)

    @classmethod
    def write(cls, reps, out: Path, cfg, approximate: bool) -> dict:
        writer = cls.writer(out, cfg, approximate)  # one chunk, no ids: Lucene ids are positions
        writer.add(reps)
        return writer.finish()

    def __init__(self, directory: Path, cfg):
        super().__init__(directory, cfg)
        self._lucene: "ImpactSearcher | None" = None
        self._position: "dict[str, int] | None" = None
        self._exact: "ExactSparse | None" = None
        self._counts: "tuple[dict[str, int], int] | None" = None

    @staticmethod
    def exhaustive(q_reps, d_reps, k: int) -> Hits:
        return ExactSparse.from_reps(d_reps).search(q_reps, k)

    def _searcher(self) -> "ImpactSearcher":
        if self._lucene is None:
            self._lucene = ImpactSearcher(self.directory / "index", self.cfg.impact.quantization)
        return self._lucene

    def _positions(self) -> "dict[str, int] | None":
        """Lucene id -> position in the corpus, where the Lucene index holds the passages' own ids (built by
        :class:`ImpactWriter`); None for an index that holds positions (built by :meth:`write`, or before ids
        were stored: such an index stays valid)."""
        if self._position is None and (self.directory / LUCENE_IDS).exists():
            ids = (self.directory / "doc_ids.txt").read_text(encoding="utf-8").split("\n")[:-1]
            self._position = {doc_id: i for i, doc_id in enumerate(ids)}
        return self._position

    def search(self, q_reps, k: int) -> Hits:
        keys = [str(i) for i in range(len(q_reps))]
        run = self._searcher().search(dict(zip(keys, q_reps)), k)
        pos = self._positions()
        if pos is not None:
            return [[(pos[doc], score) for doc, score in run[key]] for key in keys]
        return [[(int(doc), score) for doc, score in run[key]] for key in keys]

    def exact(self, q_reps, k: int) -> Hits:
        if self._exact is None:  # straight from the saved matrix, not through per-passage dicts
            self._exact = ExactSparse(*_load_matrix(self.directory))
        return self._exact.search(q_reps, k)

    def time_one(self, rep, k: int, approximate: bool = True) -> float:
        if approximate:
            return self._searcher().latencies({"q": rep}, k)[0]  # one thread, as a served query
        return super().time_one(rep, k, approximate)

    def figures(self, q_reps) -> dict:
        from harness.students.splade import flops_from_counts

        if self._counts is None:
            self._counts = _term_doc_counts(self.directory)
        return {"avg_query_terms": round(float(np.mean([len(r) for r in q_reps])), 1) if q_reps else 0.0,
                "flops": round(flops_from_counts(q_reps, *self._counts), 3)}


class ImpactWriter(IndexWriter):
    """Each chunk: its quantised weights appended to the Lucene collection file under the passages' own ids
    (so the index serves without the harness: a plain Pyserini ``LuceneImpactSearcher`` returns corpus ids),
    its unquantised ones appended to the CSR files on disk (the exact search's matrix, ~8 bytes a nonzero
    weight; only the row offsets and the term list stay in memory). The Lucene index is built from the
    file."""

    def __init__(self, backend, out: Path, cfg, approximate: bool):
        super().__init__(backend, out, cfg, approximate)
        self.vocab: dict[str, int] = {}
        self.data = NpyAppender(self.out / CSR_FILES["data"], np.float32, ndim=1)
        self.indices = NpyAppender(self.out / CSR_FILES["indices"], np.int32, ndim=1)
        self.indptr: list[int] = [0]
        self.lengths: list[int] = []
        self.collection = ImpactCollection(self.out / "index.collection", cfg.impact.quantization) \
            if approximate else None
        self.next_ids: "list[str] | None" = None
        self.own_ids = True  # every chunk came with its ids
        self.t0 = time.perf_counter()

    def ids(self, doc_ids) -> None:
        self.next_ids = [str(d) for d in doc_ids]

    def add(self, reps) -> None:
        part = _csr(reps, self.vocab, grow=True)
        self.data.append(part.data)
        self.indices.append(part.indices)
        self.indptr.extend((part.indptr[1:] + self.indptr[-1]).tolist())
        self.lengths.extend(len(r) for r in reps)
        ids, self.next_ids = self.next_ids, None
        start = len(self.lengths) - len(reps)
        if ids is None or len(ids) != len(reps) or not self.own_ids:
            if self.own_ids and start > 0:
                raise ValueError("ImpactWriter: passage ids for some chunks and not others")
            self.own_ids = False
            ids = [str(start + i) for i in range(len(reps))]  # Lucene ids are positions
        if self.collection is not None:
            self.collection.add(ids, reps)

    def finish(self) -> dict:
        self.data.finish()
        self.indices.finish()
        np.save(self.out / CSR_FILES["indptr"], np.asarray(self.indptr, dtype=np.int64))
        (self.out / "terms.json").write_text(json.dumps(list(self.vocab)))
        lengths = np.array(self.lengths)
        info = {"avg_doc_terms": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
                "max_doc_terms": int(lengths.max()) if len(lengths) else 0}
        if self.collection is not None:
            self.collection.close()
            info.update(index_collection(self.collection.folder, self.out / "index"))
            info["index_seconds"] = round(time.perf_counter() - self.t0, 2)
            if self.own_ids:
                (self.out / LUCENE_IDS).write_text("the Lucene index holds the passages' own ids\n")
                info["lucene_ids"] = "passage ids"
        return info
