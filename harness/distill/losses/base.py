"""What every registered loss shares: built from the recipe's ``[distill]`` section."""

from __future__ import annotations

import torch


class Loss(torch.nn.Module):
    """A loss of (B, G) student scores against (B, G) targets. ``from_settings`` builds it from ``[distill]``;
    a loss with no arguments keeps this one."""

    @classmethod
    def from_settings(cls, distill) -> "Loss":
        return cls()
