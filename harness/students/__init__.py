"""Students: SPLADE (sparse), ColBERT (late interaction) and dense bi-encoders, built from a backbone or
loaded from a folder the harness saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.students.base import META, Student


# families whose construction from a backbone draws new random weights (ColBERT's projection); an untrained
# dense or SPLADE student is the same model whatever the training seed
RANDOM_INIT = frozenset({"colbert"})


def student_settings(recipe) -> dict:
    """The recipe's [student] section, flattened to what a family's constructor takes."""
    s = recipe.student
    common = {"query_max_len": s.query_max_len, "doc_max_len": s.doc_max_len, "batch_size": s.batch_size,
              "layers": s.layers}
    if s.layers:
        common["layer_pick"] = s.layer_pick
    family_cfg = {"splade": s.splade, "colbert": s.colbert, "dense": s.dense}[s.family]
    extra = {k: v for k, v in vars(family_cfg).items() if k not in ("lambda_q", "lambda_d", "flops_ramp")}
    if s.family == "dense":
        extra = dense_embedding(s.model, s.dense.pooling, s.dense.similarity)
    if s.family == "splade":  # the sparse start counts terms at the length the index reads passages at
        extra["calibration_max_len"] = eval_lengths(recipe)[1]
    return {**common, **extra}


def dense_embedding(model: str, pooling: str, similarity: str) -> dict:
    """The dense student's pooling and normalisation: "auto" keeps what the backbone was published with
    (sentence-transformers' modules: mean pooling and cosine for all-MiniLM-L6-v2), else cls and dot."""
    from harness.models import native_embedding, resolve_model

    native = native_embedding(resolve_model(model, "student.model")) if "auto" in (pooling, similarity) else {}
    return {"pooling": native.get("pooling", "cls") if pooling == "auto" else pooling,
            "normalize": native.get("normalize", False) if similarity == "auto" else similarity == "cosine"}


def eval_lengths(recipe) -> tuple[int, int]:
    """(query tokens, passage tokens) when serving the student: the recipe's ``eval_*_max_len``, else the
    backbone's own maximum (training truncation is a speed setting, not a property of the model). A ColBERT
    student with query augmentation keeps its training query length: its queries are padded to it."""
    from harness.models import native_max_len, resolve_model

    s = recipe.student
    native = native_max_len(resolve_model(s.model, "student.model"))
    fixed_query = s.family == "colbert" and s.colbert.query_augment
    query = s.eval_query_max_len or (s.query_max_len if fixed_query else native)
    return query, s.eval_doc_max_len or native


def build_student(family: str, path: Path, settings: dict, calibration_texts: Sequence[str] = (),
                  field: str = "student.model") -> Student:
    if family == "splade":
        from harness.students.splade import build_splade

        return build_splade(path, settings, calibration_texts, field)
    if family == "colbert":
        from harness.students.colbert import build_colbert

        return build_colbert(path, settings, field)
    if family == "dense":
        from harness.students.dense import build_dense

        return build_dense(path, settings, field)
    raise ValueError(f"unknown student family {family!r}")


def load_student(path: Path) -> Student:
    """A student saved by :meth:`Student.save` (its family and settings come from harness_student.json)."""
    meta = json.loads((Path(path) / META).read_text())
    return build_student(meta["family"], Path(path), meta["settings"])


__all__ = ["Student", "build_student", "eval_lengths", "load_student", "student_settings"]
