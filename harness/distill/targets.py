"""Where the training targets come from — the first axis of every distillation variant.

Each source returns a (B, G) tensor of targets for B queries with G passages each (positive first):

* :class:`StaticTargets` — the answer key: teacher scores computed once, offline, looked up by (qid, pid);
* :class:`OnlineTargets` — the teacher scores the batch inside the training step;
* :class:`SelfTargets` — a larger trained student of the same family scores the batch;
* :class:`MarginTargets` — no teacher: [m, 0, …, 0], a constant margin between positive and negatives.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch


class TargetSource:
    name = "none"

    def __call__(self, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], queries: Mapping[str, str],
                 device: torch.device) -> "torch.Tensor | None":
        return None


class StaticTargets(TargetSource):
    name = "static"

    def __init__(self, answer_key):
        """``answer_key``: a DataFrame (qid, pid, score) or a {(qid, pid): score} mapping."""
        if hasattr(answer_key, "itertuples"):
            self.table = {(r.qid, r.pid): float(r.score) for r in answer_key.itertuples(index=False)}
        else:
            self.table = dict(answer_key)

    def __call__(self, qids, doc_ids, queries, device):
        try:
            rows = [[self.table[(q, d)] for d in docs] for q, docs in zip(qids, doc_ids)]
        except KeyError as exc:
            from harness.errors import ArtifactError

            raise ArtifactError(f"the answer key has no score for {exc.args[0]}: it does not match the "
                                "training groups (rebuild it with --force)") from None
        return torch.tensor(rows, dtype=torch.float32, device=device)


class OnlineTargets(TargetSource):
    name = "online"

    def __init__(self, teacher, pools: Mapping[str, list] | None = None):
        self.teacher = teacher
        self.pools = pools or {}

    def prepare(self, examples: Sequence[tuple[str, Sequence[str]]], queries: Mapping[str, str], partial=None) -> None:
        """Before training (and after each re-mining): the teacher's cached state for every example, in one
        plan fixed by the examples, so a step's targets never depend on which steps ran in this process
        (a resumed run scores every batch as an uninterrupted one did)."""
        from harness.teachers.base import Request

        self.teacher.prepare([Request(q, queries[q], list(docs), self.pools.get(q)) for q, docs in examples], partial)

    def __call__(self, qids, doc_ids, queries, device):
        from harness.teachers.base import Request

        requests = [Request(q, queries[q], list(docs), self.pools.get(q)) for q, docs in zip(qids, doc_ids)]
        scores = self.teacher.score(requests)
        return torch.tensor([list(map(float, s)) for s in scores], dtype=torch.float32, device=device)


class SelfTargets(TargetSource):
    name = "self"

    def __init__(self, teacher_student, doc_text):
        self.teacher = teacher_student.eval()
        self.doc_text = doc_text

    def __call__(self, qids, doc_ids, queries, device):
        with torch.inference_mode():
            q = self.teacher.encode_queries([queries[x] for x in qids])
            d = self.teacher.encode_docs([self.doc_text(x) for docs in doc_ids for x in docs])
            scores = self.teacher.score_groups(q, d).float()
        return scores.clone().to(device)


class MarginTargets(TargetSource):
    name = "margin"

    def __init__(self, margin: float):
        self.margin = margin

    def __call__(self, qids, doc_ids, queries, device):
        t = torch.zeros(len(qids), len(doc_ids[0]), dtype=torch.float32, device=device)
        t[:, 0] = self.margin
        return t
