"""Pointwise MSE to the teacher's score.

    L = 1/(B·G) Σ_{q} Σ_{p ∈ group(q)} ( s(q,p) − t(q,p) )²

The student regresses the teacher's score directly, so the two must live on one scale: either the
student learns the teacher's scale, or a fixed affine map of the teacher score (t' = a·t + b) or a
learned affine map of the student score (s' = α·s + β, two scalars shared by all pairs — learned on the
student side so it cannot collapse to a constant target) reconciles them (see :mod:`harness.distill.trainer`).
Used for SPLADE's static distillation in this project's seed (§3.2); regression on teacher scores goes
back to Hinton et al., "Distilling the Knowledge in a Neural Network" (2015) and, for ranking, to
Tang & Wang, "Ranking Distillation" (KDD 2018).
"""

from __future__ import annotations

import torch

from harness.distill.losses.base import Loss
from harness.registry import LOSSES


@LOSSES.register("mse")
class PointwiseMSE(Loss):
    """Args: none. Targets on the student's scale (see ``distill.target_scale``)."""

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.mean((scores - targets) ** 2)
