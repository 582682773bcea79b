"""Losses on relevance labels, not teacher scores: the positive (first) against the rest of its group.

* ``lce`` — Localized Contrastive Estimation, the listwise cross-entropy of the positive (Gao, Dai & Callan,
  "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline", ECIR 2021):

      L = −1/B Σ_q log( exp(s(q,p⁺)) / Σ_{p ∈ group(q)} exp(s(q,p)) )

* ``bce`` — binary cross-entropy with the positive up-weighted by the G − 1 negatives, so both classes
  weigh the same: L = 1/B Σ_q [ (G−1)·ℓ(s⁺, 1) + Σ_{p⁻} ℓ(s⁻, 0) ] / (2(G−1)).

Both ignore the targets' values (a group is [positive, negatives…]); they are what fine-tuning a
cross-encoder teacher on the training groups minimises (:mod:`harness.teachers.finetune`), and, as a
``distill.loss``, the supervised baseline a distilled student can be compared with.

Args: none.
"""

from __future__ import annotations

import torch

from harness.distill.losses.base import Loss
from harness.registry import LOSSES


@LOSSES.register("lce")
class ListwiseCE(Loss):
    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -torch.log_softmax(scores, dim=1)[:, 0].mean()


@LOSSES.register("bce")
class WeightedBCE(Loss):
    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        g = scores.shape[1]
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        weight = torch.ones_like(scores)
        weight[:, 0] = float(g - 1)
        per = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels, weight=weight, reduction="none")
        return (per.sum(dim=1) / (2 * (g - 1))).mean()
