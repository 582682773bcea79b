"""Cutting a student to fewer layers: which layers it keeps (the self-distilled student's starting point)."""

from __future__ import annotations

import pytest
import torch

from harness.students.base import pick_layers, truncate_layers


@pytest.mark.parametrize("total,keep,pick,want", [
    (6, 3, "first", [0, 1, 2]),
    (6, 3, "spread", [1, 3, 5]),       # DistilBERT's every other layer, ending with the top one
    (12, 4, "spread", [2, 5, 8, 11]),
    (6, 1, "spread", [5]),
    (6, 6, "spread", [0, 1, 2, 3, 4, 5]),
    (6, 0, "first", [0, 1, 2, 3, 4, 5]),
])
def test_pick_layers(total, keep, pick, want):
    assert pick_layers(total, keep, pick) == want


def test_truncate_keeps_the_picked_layers_weights(tiny_encoder):
    from transformers import AutoModel

    full = AutoModel.from_pretrained(tiny_encoder)
    cut = AutoModel.from_pretrained(tiny_encoder)
    assert truncate_layers(cut, 1, "spread") == 1 and cut.config.num_hidden_layers == 1
    top = full.encoder.layer[-1].attention.self.query.weight
    assert torch.equal(cut.encoder.layer[0].attention.self.query.weight, top)  # the top layer, not the first
    assert not torch.equal(top, full.encoder.layer[0].attention.self.query.weight)
