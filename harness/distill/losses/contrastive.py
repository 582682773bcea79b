"""In-batch contrastive loss (InfoNCE): the positive against every passage in the batch.

    L = −1/B Σ_q log( exp(s(q,p_q⁺)/τ) / Σ_{p ∈ batch} exp(s(q,p)/τ) )

Every other query's positive and hard negatives serve as negatives (Karpukhin et al., "Dense Passage
Retrieval", EMNLP 2020; van den Oord et al., "Representation Learning with Contrastive Predictive Coding",
2018). ``scores`` is (B, M) against all M = B·G passages, whose positives sit at columns q·G.
"""

from __future__ import annotations

import torch


class InBatchContrastive(torch.nn.Module):
    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, group_size: int) -> torch.Tensor:
        b = scores.shape[0]
        labels = torch.arange(b, device=scores.device) * group_size
        return torch.nn.functional.cross_entropy(scores / self.temperature, labels)
