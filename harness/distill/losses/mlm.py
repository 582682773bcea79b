"""Masked language modelling on passages, an auxiliary task that keeps the encoder's language knowledge.

    L = −1/|M| Σ_{t ∈ M} log p(x_t | x_{∖M})

with M a random 15% of the (non-special) tokens, of which 80% become [MASK], 10% a random token and 10%
stay (Devlin et al., "BERT", NAACL 2019). In the multi-task variant it is added to the distillation loss
with a weight from the recipe (cf. multi-task retrieval training, e.g. Maillard et al. 2021).
"""

from __future__ import annotations

import torch


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int,
                probability: float, generator: "torch.Generator | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with -100 where no prediction is asked). ``special`` marks tokens never masked."""
    labels = input_ids.clone()
    probs = torch.full(input_ids.shape, probability, device=input_ids.device)
    probs.masked_fill_(special, 0.0)
    chosen = torch.bernoulli(probs, generator=generator).bool()
    labels[~chosen] = -100
    masked = input_ids.clone()
    replace = torch.bernoulli(torch.full(input_ids.shape, 0.8, device=input_ids.device), generator=generator).bool() & chosen
    masked[replace] = mask_id
    rand = torch.bernoulli(torch.full(input_ids.shape, 0.5, device=input_ids.device), generator=generator).bool() \
        & chosen & ~replace
    masked[rand] = torch.randint(vocab_size, input_ids.shape, device=input_ids.device, generator=generator)[rand]
    return masked, labels


class MaskedLM(torch.nn.Module):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not (labels != -100).any():
            return logits.sum() * 0.0
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100)
