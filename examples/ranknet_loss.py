"""A distillation loss in one file, outside the harness: RankNet on the teacher's orderings.

    L = mean_{(i,j): t_i > t_j} log(1 + exp(−(s_i − s_j) / σ))

over the pairs of a query's group that the teacher orders (ties skipped): the student is asked for the
teacher's *order*, not its score gaps (Burges et al., "Learning to Rank using Gradient Descent", ICML 2005;
as a distillation loss for retrieval e.g. Zhuang et al., "RankT5", 2023). Invariant to any monotone
change of the teacher's scores, so no target scaling is needed.

Args (from the recipe's [distill] section):
    temperature: σ, the width of the logistic (``distill.temperature``, default 1).

Use it from a recipe::

    plugins = ["ranknet_loss.py"]   # relative to the recipe file
    [distill]
    loss = "ranknet"
"""

from __future__ import annotations

import torch

from harness.distill.losses.base import Loss
from harness.registry import LOSSES


@LOSSES.register("ranknet")
class RankNet(Loss):
    @classmethod
    def from_settings(cls, distill) -> "RankNet":
        return cls(distill.temperature)

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ds = (scores.unsqueeze(2) - scores.unsqueeze(1)) / self.temperature  # (B, G, G): s_i − s_j
        ordered = targets.unsqueeze(2) > targets.unsqueeze(1)  # the teacher puts i above j
        if not ordered.any():
            return scores.sum() * 0.0
        return torch.nn.functional.softplus(-ds)[ordered].mean()
