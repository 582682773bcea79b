"""Registries: shipped names come from where the implementations are defined; unknown and taken names are errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from harness.registry import LOSSES, REGULARISERS, Registry, UnknownName


def test_shipped_losses_and_regularisers_are_registered():
    assert {"mse", "margin-mse", "kl"} <= set(LOSSES.names())
    assert "flops" in REGULARISERS


def test_an_unknown_name_is_one_line_listing_the_registered_ones():
    with pytest.raises(UnknownName) as err:
        LOSSES["margin_mse"]
    assert str(err.value) == f"unknown loss 'margin_mse'; registered: {', '.join(LOSSES.names())}"
    assert "\n" not in str(err.value)


def test_a_taken_name_cannot_be_replaced():
    reg = Registry("thing", "harness.registry")
    reg.register("a")(int)
    reg.register("a")(int)  # the same object again (a module imported twice) is fine
    with pytest.raises(ValueError, match="'a' is registered already"):
        reg.register("a")(float)


def test_a_registered_loss_is_accepted_by_recipes_and_used_by_the_objective(tmp_path):
    from harness.distill.trainer import Objective
    from harness.errors import RecipeError
    from harness.recipe import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('extends = "scifact/dense-static"\n[distill]\nloss = "test-hinge"\n')
    with pytest.raises(RecipeError, match=r"distill\.loss: expected one of auto, .*got \"test-hinge\""):
        load_recipe(str(recipe))

    @LOSSES.register("test-hinge")
    class Hinge(torch.nn.Module):
        @classmethod
        def from_settings(cls, distill):
            return cls()

        def forward(self, scores, targets):
            return torch.relu(1 - (scores[:, :1] - scores[:, 1:])).mean()

    try:
        loaded = load_recipe(str(recipe))
        assert loaded.recipe.distill.loss == "test-hinge"
        objective = Objective("dense", loaded.recipe.distill)
        scores = torch.tensor([[2.0, 0.5, 1.5]])
        loss, parts = objective(None, None, scores, torch.zeros(1, 3), step=1)
        assert isinstance(objective.main, Hinge) and float(loss) == pytest.approx((0 + 0.5) / 2)
    finally:
        LOSSES._items.pop("test-hinge")


def test_flops_composes_with_any_loss():
    from harness.distill.losses import FLOPS, ListwiseKL, Regularised

    loss = Regularised(ListwiseKL(), FLOPS(), query_weight=0.5, doc_weight=0.0, ramp_steps=4)
    scores, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    q = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    total, parts = loss(scores, targets, q, q, step=2)
    assert set(parts) == {"distill", "flops_q"}  # λ_d = 0: no passage term
    assert float(parts["flops_q"]) == pytest.approx(0.5 * (2 / 4) ** 2 * (1.0 ** 2 + 1.0 ** 2))
    assert float(total) == pytest.approx(float(parts["distill"] + parts["flops_q"]))


def test_objective_keeps_splade_flops_and_the_loss_name():
    from harness.distill.trainer import Objective

    distill = SimpleNamespace(variant="static", loss="auto", pairs="all", temperature=1.0, target_scale="none",
                              scale_a=1.0, scale_b=0.0)
    obj = Objective("splade", distill, ("flops", 0.01, 0.008, 0.5), total_steps=10)
    assert obj.loss_name == "mse" and obj.regularised.ramp_steps == 5
    obj.total_steps = 40  # what the training loop sets once it knows its steps: the ramp follows
    assert obj.regularised.ramp_steps == 20
    reps = torch.rand(4, 30)
    _, parts = obj(reps, reps, torch.rand(2, 2), torch.rand(2, 2), step=20)
    assert set(parts) == {"distill", "flops_q", "flops_d"}
    assert float(parts["flops_q"]) == pytest.approx(0.01 * float(torch.sum(reps.abs().mean(0) ** 2)), rel=1e-5)


def test_every_family_has_an_index_and_re_mining_refuses_an_unknown_one():
    from types import SimpleNamespace as NS

    from harness.distill.remine import student_top_k
    from harness.index.base import StudentIndex
    from harness.registry import INDEXES

    assert set(INDEXES.names()) == {"splade", "colbert", "dense"}
    assert all(issubclass(INDEXES[f], StudentIndex) and INDEXES[f].family == f for f in INDEXES.names())
    student = NS(family="lexical", infer_docs=lambda texts: texts, infer_queries=lambda texts: texts)
    with pytest.raises(UnknownName, match="unknown index backend 'lexical'; registered: colbert, dense, splade"):
        student_top_k(student, ["d1"], ["text"], {"q1": "query"}, k=5)


def test_exhaustive_search_is_the_same_through_every_index():
    """The three families' exact searches agree with a brute-force score matrix (ties: lower position first)."""
    import numpy as np

    from harness.index.dense import FaissIndex
    from harness.index.impact import ImpactIndex
    from harness.index.plaid import PlaidIndex

    rng = np.random.default_rng(0)
    docs = [rng.normal(size=4).astype(np.float32) for _ in range(6)]
    docs[3] = docs[1].copy()  # a tie
    q = [rng.normal(size=4).astype(np.float32)]
    brute = np.stack(docs) @ q[0]
    order = sorted(range(6), key=lambda i: (-brute[i], i))
    assert [i for i, _ in FaissIndex.exhaustive(q, docs, 6)[0]] == order
    # ColBERT with one token per text is the same inner product
    assert [i for i, _ in PlaidIndex.exhaustive([x[None] for x in q], [d[None] for d in docs], 6)[0]] == order
    sparse_docs = [{f"t{j}": float(v) for j, v in enumerate(d) if v > 0} for d in docs]
    sparse_q = [{f"t{j}": float(v) for j, v in enumerate(q[0]) if v > 0}]
    sb = np.array([sum(w * sparse_q[0].get(t, 0.0) for t, w in d.items()) for d in sparse_docs])
    want = [i for i in sorted(range(6), key=lambda i: (-sb[i], i)) if sb[i] > 0]
    assert [i for i, _ in ImpactIndex.exhaustive(sparse_q, sparse_docs, 6)[0]] == want


def test_families_are_registered_with_an_index_each_and_named_in_one_line_errors(tmp_path):
    from harness.errors import RecipeError
    from harness.recipe import load_recipe
    from harness.registry import FAMILIES, INDEXES

    assert set(FAMILIES.names()) == set(INDEXES.names()) == {"splade", "colbert", "dense"}
    assert FAMILIES["splade"].default_loss == "mse" and FAMILIES["colbert"].random_init
    with pytest.raises(RecipeError, match=r'student.family: expected one of colbert, dense, splade, got "spalde"'):
        load_recipe("scifact/splade-static", ['student.family="spalde"'])


def test_label_losses_match_their_equations():
    from harness.distill.losses import ListwiseCE, WeightedBCE

    s = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, -1.0]])
    lce = -(torch.log_softmax(s, dim=1)[:, 0]).mean()
    assert float(ListwiseCE()(s, torch.zeros_like(s))) == pytest.approx(float(lce))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    manual = []
    for row in s:
        pos = 2 * bce(row[:1], torch.ones(1), reduction="sum")
        neg = bce(row[1:], torch.zeros(2), reduction="sum")
        manual.append((pos + neg) / (2 * 2))
    assert float(WeightedBCE()(s, torch.zeros_like(s))) == pytest.approx(float(torch.stack(manual).mean()))
    assert {"lce", "bce"} <= set(LOSSES.names())
