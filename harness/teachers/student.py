"""A trained student as the teacher: another recipe's student — of any family — scores (query, passage) pairs
with its own similarity (cosine or dot for a dense student, MaxSim for ColBERT, the sparse dot product for
SPLADE), read at its evaluation lengths.

    t(q, p) = s_θ*(q, p),    θ* = the student trained by ``teacher.student.recipe``

What it is for: a student distilled on the training queries' labels can be a better teacher than the one it
learnt from (the SciFact suite's dense multi-task student reaches 0.7865 nDCG@10 on the dev split, its
MiniLM + BM25 teacher 0.7520), and a student of one family can teach another — cross-architecture
distillation, as a dense or ColBERT teacher for SPLADE (Formal et al., "From Distillation to Hard Negative
Sampling", SIGIR 2022; Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
Knowledge Distillation", 2020). Fused with BM25 in an ensemble (``members = ["student", "bm25"]``) like any
other member. Measured on SciFact (README lever table): that student fused with BM25 (0.8/0.2) reranks dev at
0.8223 against the default teacher's 0.7520, yet the SPLADE and ColBERT students it taught scored as they do
with the default teacher (0.7218 against 0.7205; 0.7482, inside ColBERT's seed spread).

Passages are encoded through the student's inference face (what its index takes) in one plan fixed by the
requests — every distinct passage once, in length-sorted batches — and scored with the family's exhaustive
search (:meth:`harness.index.base.StudentIndex.exhaustive`), so the teacher's score of a pair is the score the
student's own exact search gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from harness.data.dataset import Doc
from harness.teachers.base import Request, Teacher


class StudentTeacher(Teacher):
    kind = "student"

    def __init__(self, student, family: str, docs: Mapping[str, Doc], fields: Sequence[str], query_max_len: int,
                 doc_max_len: int):
        super().__init__(docs, fields)
        from harness.registry import INDEXES

        self.student = student.eval()
        self.exhaustive = INDEXES[family].exhaustive
        self.query_max_len, self.doc_max_len = query_max_len, doc_max_len
        self._doc_rep: dict[str, Any] = {}

    def prepare(self, requests: Sequence[Request], partial: "Path | None" = None) -> None:
        """Encode every passage of ``requests`` once, in first-appearance order (a plan fixed by the requests
        alone, so a stage scores the same whether it resumed or followed other work). ``partial`` is not used:
        a resumed stage encodes again, to the same representations."""
        self._encode(list(dict.fromkeys(d for r in requests for d in r.doc_ids)))

    def _encode(self, ids: Sequence[str]) -> None:
        if ids:
            self._doc_rep.update(zip(ids, self.student.infer_docs([self.text(d) for d in ids], self.doc_max_len)))

    def _doc_reps(self, doc_ids: Sequence[str]) -> list:
        self._encode(list(dict.fromkeys(d for d in doc_ids if d not in self._doc_rep)))
        return [self._doc_rep[d] for d in doc_ids]

    def score(self, requests: Sequence[Request]) -> list[np.ndarray]:
        self._doc_reps([d for r in requests for d in r.doc_ids])  # one batched pass for all passages
        q_reps = self.student.infer_queries([r.query for r in requests], self.query_max_len)
        self.calls += 1
        out = []
        for r, q in zip(requests, q_reps):
            scores = np.zeros(len(r.doc_ids), dtype=np.float32)  # a passage the search leaves out scores 0
            if len(r.doc_ids):
                for i, s in self.exhaustive([q], self._doc_reps(r.doc_ids), len(r.doc_ids))[0]:
                    scores[i] = s
            out.append(scores)
        return out
