"""A distillation variant in one file, outside the harness: distil the teacher's *order*, not its scores.

The answer key's scores go through their rank inside each training group, and the student is taught the
DCG discount of that rank:

    t(q, p) = 1 / log2(2 + rank_teacher(p | group of q))        rank 0 = the teacher's best passage

so a teacher whose scores are badly calibrated across queries (an ensemble's z-scores, a cross-encoder's
logits) teaches only what it is sure of: which passage goes first. Same answer key, same cache, a different
target source (cf. Reddi et al., "RankDistil", AISTATS 2021, on distilling rankings rather than scores).

Use it from a recipe::

    plugins = ["rank_targets_variant.py"]
    [distill]
    variant = "static-ranks"
"""

from __future__ import annotations

import torch

from harness.distill.targets import TargetSource
from harness.distill.variants import Static
from harness.registry import VARIANTS


class RankTargets(TargetSource):
    name = "static-ranks"

    def __init__(self, scores: TargetSource):
        self.scores = scores

    def __call__(self, qids, doc_ids, queries, device):
        t = self.scores(qids, doc_ids, queries, device)  # (B, G) teacher scores
        order = torch.argsort(t, dim=1, descending=True, stable=True)
        ranks = torch.argsort(order, dim=1, stable=True).to(torch.float32)  # rank of each passage
        return 1.0 / torch.log2(2.0 + ranks)


@VARIANTS.register("static-ranks")
class StaticRanks(Static):
    """The answer key, by rank (uses the teacher like ``static``; the same answer key is shared)."""

    name = "static-ranks"

    def targets(self, ctx):
        scores, key = super().targets(ctx)
        return RankTargets(scores), {"ranks-of": key}
