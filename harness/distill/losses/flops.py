"""FLOPS regulariser: keeps SPLADE's vectors sparse enough for an inverted index.

    ℓ_FLOPS = Σ_j ( 1/N Σ_{i=1..N} w_j(x_i) )²

over the N representations of a batch and the vocabulary j: a smooth proxy of the expected number of
floating-point operations of a query-document dot product (Paria et al., "Minimizing FLOPs to Learn
Efficient Sparse Representations", ICLR 2020). SPLADE adds λ_q·ℓ_FLOPS(queries) + λ_d·ℓ_FLOPS(passages)
and ramps λ up quadratically over the first steps (Formal et al., "SPLADE v2", 2021):

    λ(t) = λ · min(1, (t / T)²)
"""

from __future__ import annotations

import torch

from harness.registry import REGULARISERS


def flops_weight(lam: float, step: int, ramp_steps: int) -> float:
    if ramp_steps <= 0:
        return lam
    return lam * min(1.0, (step / ramp_steps) ** 2)


@REGULARISERS.register("flops")
class FLOPS(torch.nn.Module):
    """Args: none; the weight λ and its ramp belong to :class:`~harness.distill.losses.regularised.Regularised`."""

    def forward(self, reps: torch.Tensor) -> torch.Tensor:
        return torch.sum(torch.mean(torch.abs(reps), dim=0) ** 2)
