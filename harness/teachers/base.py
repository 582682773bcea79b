"""What a teacher is: something that scores a query's candidate passages.

Teachers receive one :class:`Request` per query (its candidates by id) and return one score array per
request. ``pool`` is the query's BM25 candidate list with BM25 scores; teachers that normalise per query
(the ensemble) normalise over it, so a pair's score does not depend on which other pairs happen to be
scored in the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness.data.dataset import Doc


@dataclass(frozen=True)
class Request:
    qid: str
    query: str
    doc_ids: Sequence[str]
    pool: "Sequence[tuple[str, float]] | None" = None  # BM25 top-k of this query: [(doc_id, bm25 score)]


class Teacher:
    """Base class. ``docs`` maps a doc id to its :class:`Doc`; ``fields`` choose the text."""

    kind = "teacher"

    def __init__(self, docs: Mapping[str, Doc], fields: Sequence[str]):
        self.docs = docs
        self.fields = list(fields)
        self.calls = 0  # forward calls into the model(s): tests use it to prove online scoring happens

    def text(self, doc_id: str) -> str:
        return self.docs[doc_id].contents(self.fields)

    def score(self, requests: Sequence[Request]) -> list[np.ndarray]:
        raise NotImplementedError

    def prepare(self, requests: Sequence[Request], partial: "Path | None" = None) -> None:
        """Before a stage scores ``requests``: compute whatever the teacher caches across calls (passage
        embeddings) for all of them, in one plan fixed by the requests alone, so every score is the same
        whether the stage runs uninterrupted, resumes after a kill (finished parts of the plan are kept in
        ``partial``) or follows other work in the same process. Teachers without such state do nothing."""

    def score_pairs(self, requests: Sequence[Request]) -> np.ndarray:
        """All scores of all requests, flattened in request order."""
        out = self.score(requests)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def split_back(flat: np.ndarray, requests: Sequence[Request]) -> list[np.ndarray]:
    out, start = [], 0
    for r in requests:
        out.append(flat[start:start + len(r.doc_ids)])
        start += len(r.doc_ids)
    return out
