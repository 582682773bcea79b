"""One interface over every dataset: documents, queries and qrels of one split.

Queries are the *judged* queries of the split (those with at least one qrel), in file order: the
ones an evaluation averages over. Documents stream, so an 8.8M-passage corpus never sits in memory.
Fingerprints key cached artifacts: the corpus fingerprint depends on the documents only (so
``beir/scifact/train`` and ``beir/scifact/test`` share one index), the topics fingerprint on the
queries and qrels.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Mapping

Qrels = dict[str, dict[str, int]]  # qid -> {doc_id: relevance}


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    text: str

    def contents(self, fields: "list[str] | tuple[str, ...]" = ("title", "text")) -> str:
        """The text that gets indexed or encoded: the chosen fields joined with one space."""
        return " ".join(part for part in (getattr(self, f) for f in fields) if part).strip()


class Dataset:
    """Base class; subclasses implement ``_iter_docs``, ``_load_queries``, ``_load_qrels`` and fingerprints."""

    id: str  # as the user wrote it
    source: str  # where it is read from, for logs and manifests

    # -- subclasses ----------------------------------------------------------------------------
    def _iter_docs(self) -> Iterator[Doc]:
        raise NotImplementedError

    def _load_queries(self) -> dict[str, str]:
        raise NotImplementedError

    def _load_qrels(self) -> Qrels:
        raise NotImplementedError

    def corpus_fingerprint(self) -> str:
        raise NotImplementedError

    def topics_fingerprint(self) -> str:
        raise NotImplementedError

    # -- public --------------------------------------------------------------------------------
    def docs(self) -> Iterator[Doc]:
        return self._iter_docs()

    def doc_store(self) -> Mapping[str, Doc]:
        """Random access to documents by id (a dict for local folders; ir_datasets' docs_store otherwise)."""
        if not hasattr(self, "_doc_store"):
            self._doc_store = {d.doc_id: d for d in self.docs()}
        return self._doc_store

    @cached_property
    def qrels(self) -> Qrels:
        return self._load_qrels()

    @cached_property
    def queries(self) -> dict[str, str]:
        """Judged queries of this split, in file order."""
        all_q = self._load_queries()
        return {qid: text for qid, text in all_q.items() if qid in self.qrels}

    @property
    def slug(self) -> str:
        """A file-system-safe name: ``beir/scifact/test`` → ``beir-scifact-test``."""
        return re.sub(r"[^A-Za-z0-9._+]+", "-", self.id).strip("-") or "dataset"

    def doc_count(self) -> int:
        return sum(1 for _ in self.docs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r} from {self.source})"


class DatasetSlice(Dataset):
    """A deterministic slice for CPU-sized runs: the first ``max_queries`` judged queries, and a corpus of
    ``max_docs`` documents made of every document judged for those queries, then the corpus in order."""

    def __init__(self, base: Dataset, max_queries: int = 0, max_docs: int = 0):
        self.base, self.max_queries, self.max_docs = base, max_queries, max_docs
        parts = [base.id]
        if max_queries:
            parts.append(f"q{max_queries}")
        if max_docs:
            parts.append(f"d{max_docs}")
        self.id = "@".join(parts) if len(parts) == 1 else f"{base.id}[{','.join(parts[1:])}]"
        self.source = base.source

    @cached_property
    def _kept_qids(self) -> list[str]:
        qids = list(self.base.queries)
        return qids[: self.max_queries] if self.max_queries else qids

    def _load_qrels(self) -> Qrels:
        return {qid: self.base.qrels[qid] for qid in self._kept_qids}

    def _load_queries(self) -> dict[str, str]:
        return {qid: self.base.queries[qid] for qid in self._kept_qids}

    def _iter_docs(self) -> Iterator[Doc]:
        if not self.max_docs:
            yield from self.base.docs()
            return
        judged = {d for qid in self._kept_qids for d in self.base.qrels[qid]}
        room = max(self.max_docs - len(judged), 0)
        for doc in self.base.docs():
            if doc.doc_id in judged:
                yield doc
            elif room > 0:
                room -= 1
                yield doc

    def doc_store(self) -> Mapping[str, Doc]:
        return self.base.doc_store() if not self.max_docs else super().doc_store()

    def corpus_fingerprint(self) -> str:
        if not self.max_docs:
            return self.base.corpus_fingerprint()
        return f"{self.base.corpus_fingerprint()}|docs={self.max_docs}|{self.topics_fingerprint()}"

    def topics_fingerprint(self) -> str:
        return f"{self.base.topics_fingerprint()}|queries={self.max_queries}"


DEV_SALT = "harness-dev-1"  # part of every dev split's identity: changing it changes every split


def dev_query_ids(qids: "list[str]", fraction: float, max_queries: int) -> set[str]:
    """The dev queries of a training split: the ``fraction`` (at most ``max_queries``) of ``qids`` whose
    salted SHA-256 is smallest. A query's membership depends on its id alone, not on file order, the
    recipe's seed or the machine; a fraction > 0 keeps at least one query."""
    if fraction <= 0 or not qids:
        return set()
    k = min(max(1, round(fraction * len(qids))), max_queries, len(qids))
    ranked = sorted(qids, key=lambda q: hashlib.sha256(f"{DEV_SALT}:{q}".encode()).hexdigest())
    return set(ranked[:k])


class SameCorpus(Dataset):
    """Other queries (a part of ``self.base``'s, or more) over ``self.base``'s corpus, its indexes shared."""

    base: Dataset

    def _iter_docs(self) -> Iterator[Doc]:
        return self.base.docs()

    def doc_store(self) -> Mapping[str, Doc]:
        return self.base.doc_store()

    def corpus_fingerprint(self) -> str:
        return self.base.corpus_fingerprint()


class QuerySplit(SameCorpus):
    """The dev part (``part="dev"``) or the rest (``part="train"``) of a training split, on the same corpus.

    Ids: ``beir/scifact/train[dev]`` and ``beir/scifact/train[-dev]``; the two share the corpus (and so its
    indexes) and never share a query. Made by :func:`dev_split`, which picks the dev queries once for both."""

    def __init__(self, base: Dataset, dev_ids: "frozenset[str]", part: str, identity: str):
        if part not in ("dev", "train"):
            raise ValueError(part)
        self.base, self.dev_ids, self.part, self.identity = base, dev_ids, part, identity
        self.id = f"{base.id}[dev]" if part == "dev" else f"{base.id}[-dev]"
        self.source = base.source

    @cached_property
    def _kept_qids(self) -> list[str]:
        keep = self.part == "dev"
        return [q for q in self.base.queries if (q in self.dev_ids) == keep]

    def _load_qrels(self) -> Qrels:
        return {qid: self.base.qrels[qid] for qid in self._kept_qids}

    def _load_queries(self) -> dict[str, str]:
        return {qid: self.base.queries[qid] for qid in self._kept_qids}

    def topics_fingerprint(self) -> str:
        return f"{self.base.topics_fingerprint()}|{self.part}={self.identity}"


def dev_split(base: Dataset, fraction: float, max_queries: int) -> "tuple[Dataset, Dataset | None]":
    """(training part, dev part) of ``base``; (base, None) when ``fraction`` is 0."""
    if fraction <= 0:
        return base, None
    dev_ids = frozenset(dev_query_ids(list(base.queries), fraction, max_queries))
    identity = f"{fraction}/{max_queries}/{DEV_SALT}"
    return QuerySplit(base, dev_ids, "train", identity), QuerySplit(base, dev_ids, "dev", identity)


class WithTitleQueries(SameCorpus):
    """A training split plus one pseudo-query per corpus passage that has a title: the title, judged relevant
    to its passage (``title:<doc id>``). In-domain training data without labels, in the spirit of GPL (Wang
    et al., NAACL 2022), with titles standing in for generated queries: the teacher labels the pseudo-queries'
    BM25 negatives like any query's. Transductive — it reads the corpus the evaluation searches, never its
    queries or judgements — so a recipe using it is its own row, not a setting of another."""

    PREFIX = "title:"

    def __init__(self, base: Dataset, max_queries: int = 0):
        self.base, self.max_queries = base, max_queries
        self.id = f"{base.id}+titles" + (f"[{max_queries}]" if max_queries else "")
        self.source = base.source

    @cached_property
    def _titles(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for doc in self.base.docs():
            if doc.title and doc.title.strip():
                out[self.PREFIX + doc.doc_id] = doc.title.strip()
                if self.max_queries and len(out) >= self.max_queries:
                    break
        return out

    def _load_queries(self) -> dict[str, str]:
        return {**self.base.queries, **self._titles}

    def _load_qrels(self) -> Qrels:
        return {**self.base.qrels, **{q: {q[len(self.PREFIX):]: 1} for q in self._titles}}

    def topics_fingerprint(self) -> str:
        return f"{self.base.topics_fingerprint()}|titles-v1={self.max_queries}"
