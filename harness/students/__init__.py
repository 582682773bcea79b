"""Students: SPLADE (sparse), ColBERT (late interaction) and dense bi-encoders, built from a backbone or
loaded from a folder the harness saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.students.base import META, Student


def student_settings(recipe) -> dict:
    """The recipe's [student] section, flattened to what a family's constructor takes."""
    from harness.students.families import family_of

    s = recipe.student
    common = {"query_max_len": s.query_max_len, "doc_max_len": s.doc_max_len, "batch_size": s.batch_size,
              "layers": s.layers}
    if s.layers:
        common["layer_pick"] = s.layer_pick
    return {**common, **family_of(recipe).settings(recipe)}


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
    from harness.students.families import family_of

    fixed_query = family_of(recipe).fixed_query_length(recipe)
    query = s.eval_query_max_len or (s.query_max_len if fixed_query else native)
    return query, s.eval_doc_max_len or native


def build_student(family: str, path: Path, settings: dict, calibration_texts: Sequence[str] = (),
                  field: str = "student.model") -> Student:
    from harness.registry import FAMILIES

    return FAMILIES[family]().build(path, settings, calibration_texts, field)


def load_student(path: Path) -> Student:
    """A student saved by :meth:`Student.save` (its family and settings come from harness_student.json)."""
    meta = json.loads((Path(path) / META).read_text())
    return build_student(meta["family"], Path(path), meta["settings"])


__all__ = ["Student", "build_student", "eval_lengths", "load_student", "student_settings"]
