"""A student family in one file, outside the harness: a dense student that keeps only the first ``dim``
dimensions of its embedding (Matryoshka representations: Kusupati et al., "Matryoshka Representation
Learning", NeurIPS 2022) — a smaller index and faster search for the same backbone.

    e(x) = normalise(pool(BERT(x))[:dim])        s(q, d) = e(q) · e(d)

Three registrations, as for any family: the student (a subclass of the shipped dense one), the family (how
to build it, its settings — its own ``[student.dense-mrl]`` table, validated with the recipe) and its index
(the dense FAISS index, under this family's name). Use it from a recipe::

    plugins = ["matryoshka_family.py"]
    [student]
    family = "dense-mrl"
    [student.dense-mrl]
    dim = 128
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.index.dense import FaissIndex
from harness.recipe.fields import param, positive
from harness.registry import FAMILIES, INDEXES
from harness.students.dense import Dense, build_dense
from harness.students.families import DenseFamily


@dataclass(frozen=True)
class MatryoshkaSettings:
    dim: int = param(128, doc="Embedding dimensions kept (the first ones).", check=positive)


class MatryoshkaDense(Dense):
    family = "dense-mrl"

    def __init__(self, backbone, tokenizer, settings: dict):
        super().__init__(backbone, tokenizer, settings)
        self.dim = int(settings["dim"])

    def embed(self, enc) -> torch.Tensor:
        normalize, self.normalize = self.normalize, False  # cut first, then normalise
        try:
            emb = super().embed(enc)[:, : self.dim]
        finally:
            self.normalize = normalize
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb


@FAMILIES.register("dense-mrl")
class MatryoshkaFamily(DenseFamily):
    name, Settings = "dense-mrl", MatryoshkaSettings

    def build(self, path, settings, calibration_texts=(), field="student.model"):
        base = build_dense(path, settings, field)  # the shipped loader: backbone, tokenizer, layers kept
        return MatryoshkaDense(base.backbone, base.tokenizer, base.settings)

    def settings(self, recipe):
        return {**super().settings(recipe), "dim": self.section(recipe).dim}


@INDEXES.register("dense-mrl")
class MatryoshkaIndex(FaissIndex):
    family = "dense-mrl"
