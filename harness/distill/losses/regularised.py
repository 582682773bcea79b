"""A distillation loss plus weighted regularisers of the query and passage representations.

    L = L_main(s, t) + λ_q(step) · R(Q) + λ_d(step) · R(D)

with Q, D the batch's query and passage representations and λ ramped up quadratically over the first
``ramp_steps`` (λ(t) = λ · min(1, (t/T)²), Formal et al., "SPLADE v2", 2021). Any loss composes with any
regulariser (FLOPS for sparse students: Paria et al., ICLR 2020), as in sentence-transformers'
``SpladeLoss(model, loss=SparseMarginMSELoss(model), ...)``.

Args:
    loss: the main loss, ``forward(scores, targets)``.
    regulariser: ``forward(reps) -> scalar`` (a :data:`~harness.registry.REGULARISERS` entry).
    query_weight, doc_weight: λ_q and λ_d (0 leaves that side unregularised).
    ramp_steps: steps over which λ grows to its value (0: from the first step).
"""

from __future__ import annotations

import torch

from harness.distill.losses.flops import flops_weight


class Regularised(torch.nn.Module):
    def __init__(self, loss: torch.nn.Module, regulariser: torch.nn.Module, query_weight: float, doc_weight: float,
                 ramp_steps: int = 0):
        super().__init__()
        self.loss, self.regulariser = loss, regulariser
        self.query_weight, self.doc_weight, self.ramp_steps = query_weight, doc_weight, ramp_steps

    def forward(self, scores: torch.Tensor, targets: torch.Tensor, q_rep: torch.Tensor, d_rep: torch.Tensor,
                step: int) -> "tuple[torch.Tensor, dict[str, torch.Tensor]]":
        parts = {"distill": self.loss(scores, targets)}
        lq = flops_weight(self.query_weight, step, self.ramp_steps)
        ld = flops_weight(self.doc_weight, step, self.ramp_steps)
        if lq:
            parts["flops_q"] = lq * self.regulariser(q_rep)
        if ld:
            parts["flops_d"] = ld * self.regulariser(d_rep)
        return sum(parts.values()), parts
