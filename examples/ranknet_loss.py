"""A distillation loss in one file, outside the harness: RankNet on the teacher's orderings.

    L = mean_{(i,j): t_i > t_j} log(1 + exp(−(s_i − s_j) / σ))

over the pairs of a query's group that the teacher orders (ties skipped): the student is asked for the
teacher's *order*, not its score gaps (Burges et al., "Learning to Rank using Gradient Descent", ICML 2005;
as a distillation loss for retrieval e.g. Zhuang et al., "RankT5", 2023). Invariant to any monotone
change of the teacher's scores, so no target scaling is needed.

Args (the recipe's own ``[distill.ranknet]`` table, validated with the recipe like a built-in one and part of
the student's cache key):
    sigma: σ, the width of the logistic (default 1).

Use it from a recipe::

    plugins = ["ranknet_loss.py"]   # relative to the recipe file
    [distill]
    loss = "ranknet"
    [distill.ranknet]
    sigma = 1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.distill.losses.base import Loss
from harness.recipe.fields import param, plugin_settings, positive
from harness.registry import LOSSES


@dataclass(frozen=True)
class RankNetSettings:
    sigma: float = param(1.0, doc="Width of the logistic: (s_i − s_j) / sigma.", check=positive)


@LOSSES.register("ranknet")
class RankNet(Loss):
    Settings = RankNetSettings

    @classmethod
    def from_settings(cls, distill) -> "RankNet":
        return cls(plugin_settings(distill, "ranknet", cls.Settings).sigma)

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        self.sigma = sigma

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ds = (scores.unsqueeze(2) - scores.unsqueeze(1)) / self.sigma  # (B, G, G): s_i − s_j
        ordered = targets.unsqueeze(2) > targets.unsqueeze(1)  # the teacher puts i above j
        if not ordered.any():
            return scores.sum() * 0.0
        return torch.nn.functional.softplus(-ds)[ordered].mean()
