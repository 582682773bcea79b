"""Listwise KL divergence between the teacher's and the student's distributions over a query's group.

    L = 1/B Σ_q KL( softmax(t(q,·)/τ) ‖ softmax(s(q,·)/τ) )

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015); for retrieval e.g.
Santhanam et al., "ColBERTv2" (NAACL 2022) and Formal et al., "From Distillation to Hard Negative
Sampling" (SIGIR 2022). Invariant to a shift of either score; τ sets how peaked the target is.
"""

from __future__ import annotations

import torch

from harness.distill.losses.base import Loss
from harness.registry import LOSSES


@LOSSES.register("kl")
class ListwiseKL(Loss):
    """Args: ``temperature`` τ (``distill.temperature``)."""

    @classmethod
    def from_settings(cls, distill) -> "ListwiseKL":
        return cls(distill.temperature)

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p_student = torch.log_softmax(scores / self.temperature, dim=-1)
        log_p_teacher = torch.log_softmax(targets / self.temperature, dim=-1)
        return torch.nn.functional.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
