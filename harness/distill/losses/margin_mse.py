"""Margin-MSE: match the teacher's score *differences* between passages of the same query.

    L = mean_{(i,j) ∈ P} ( (s(q,p_i) − s(q,p_j)) − (t(q,p_i) − t(q,p_j)) )²

with P = every pair of the group (``pairs="all"``: the ColBERT recipe of this project's seed, §3.1) or
the positive against each negative (``pairs="positive"``: Hofstätter et al., "Improving Efficient
Neural Ranking Models with Cross-Architecture Knowledge Distillation", 2020). Differences are invariant
to a shift of either score, so student and teacher need not share an offset. Without a teacher, the
target margin is a constant m between the positive and every negative ("margin" variant): t = [m, 0, …, 0]
with ``pairs="positive"``.
"""

from __future__ import annotations

import torch

from harness.distill.losses.base import Loss
from harness.registry import LOSSES


@LOSSES.register("margin-mse")
class MarginMSE(Loss):
    """Args: ``pairs`` — "all" pairs of the group or the "positive" against each negative
    (``distill.pairs``; the margin variant fixes "positive": its target is a margin between the positive and
    the negatives)."""

    @classmethod
    def from_settings(cls, distill) -> "MarginMSE":
        return cls(distill.pairs)

    def __init__(self, pairs: str = "all"):
        super().__init__()
        if pairs not in ("all", "positive"):
            raise ValueError(f"pairs must be 'all' or 'positive', got {pairs!r}")
        self.pairs = pairs

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.pairs == "positive":
            ds = scores[:, :1] - scores[:, 1:]
            dt = targets[:, :1] - targets[:, 1:]
            return torch.mean((ds - dt) ** 2)
        ds = scores.unsqueeze(2) - scores.unsqueeze(1)  # (B, G, G): s_i - s_j
        dt = targets.unsqueeze(2) - targets.unsqueeze(1)
        g = scores.shape[1]
        upper = torch.triu(torch.ones(g, g, dtype=torch.bool, device=scores.device), diagonal=1)
        return torch.mean(((ds - dt) ** 2)[:, upper])
