"""Students: SPLADE (sparse), ColBERT (late interaction) and dense bi-encoders, built from a backbone or
loaded from a folder the harness saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.students.base import META, Student


def student_settings(recipe) -> dict:
    """The recipe's [student] section, flattened to what a family's constructor takes."""
    s = recipe.student
    common = {"query_max_len": s.query_max_len, "doc_max_len": s.doc_max_len, "batch_size": s.batch_size,
              "layers": s.layers}
    family_cfg = {"splade": s.splade, "colbert": s.colbert, "dense": s.dense}[s.family]
    extra = {k: v for k, v in vars(family_cfg).items() if k not in ("lambda_q", "lambda_d", "flops_ramp")}
    return {**common, **extra}


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


__all__ = ["Student", "build_student", "load_student", "student_settings"]
