"""What every registered loss shares: built from the recipe's ``[distill]`` section."""

from __future__ import annotations

import torch


class Loss(torch.nn.Module):
    """A loss of (B, G) student scores against (B, G) targets. ``from_settings`` builds it from ``[distill]``;
    a loss with no arguments keeps this one. A plug-in loss with arguments of its own declares ``Settings``
    (a frozen dataclass of ``harness.recipe.fields.param`` fields): the recipe's ``[distill.<loss name>]``
    table is validated against it, enters the student's cache key, and is read with
    ``harness.recipe.fields.plugin_settings(distill, "<loss name>", cls.Settings)``."""

    Settings = None

    @classmethod
    def from_settings(cls, distill) -> "Loss":
        return cls()
