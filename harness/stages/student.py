"""Stage 5, the student: built from its backbone (or from a trained student, for self-distillation) and
trained by the recipe's variant towards its targets; variant "none" only initialises it.

The trained student is a shared stage keyed by content, so recipes that differ only in their evaluation
sets reuse it, and a self-distillation recipe finds its teacher-student by hash. Its key holds exactly what
the training reads: the student's identity and settings, the training groups, the targets' key, the
``[distill]`` settings the objective reads (:func:`distill_key`), ``[train]`` less its bookkeeping, the
seeds and the plug-ins' sources.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Callable

from harness.artifacts import SHARED, Stage, Store
from harness.artifacts.environment import package_versions
from harness.data import Dataset


NEW_TRAIN_DEFAULTS = {"dropout": -1.0, "pseudo_queries": "none", "pseudo_max_queries": 0}


def identity(recipe) -> dict[str, Any]:
    """What makes two students different, trained or not: family, backbone weights, settings, fields."""
    from harness.models import model_identity
    from harness.students import student_settings
    from harness.students.families import family_of
    from harness.students.shapes import PAD_MULTIPLE

    s = recipe.student
    out = {"family": s.family, "backbone": model_identity(s.model, "student.model"),
           "settings": student_settings(recipe), "fields": list(recipe.data.doc_fields),
           "torch": package_versions().get("torch"), "transformers": package_versions().get("transformers"),
           # batches padded to a multiple of this many tokens: encodings differ by rounding, training by its dropout draws
           "pad_multiple": PAD_MULTIPLE}
    out.update(family_of(recipe).identity(recipe))
    return out


def distill_key(recipe) -> dict[str, Any]:
    """The ``[distill]`` settings the training objective reads, and no others: another variant's section
    (``online``, ``self``, ``multitask``: in the targets' key when they are the variant's), the margin of the
    margin variant (ditto), the temperature of a loss that is not KL, ``scale_a``/``scale_b`` unless the scale
    is fixed. So changing a setting a student never reads does not retrain it."""
    from harness.distill.trainer import resolve_loss
    from harness.distill.variants import effective, variant_of

    d = effective(recipe.distill)
    loss = resolve_loss(recipe.student.family, d)
    key: dict[str, Any] = {"variant": d.variant, "loss": loss}
    if loss == "margin-mse":
        key["pairs"] = d.pairs
    if loss == "kl":
        key["temperature"] = d.temperature
    variant = variant_of(recipe)
    if variant.scaled_targets:
        key["target_scale"] = d.target_scale
        if d.target_scale == "fixed":
            key["scale"] = [d.scale_a, d.scale_b]
    # a plug-in's own [distill.<name>] table (built-in variants' sections are in their targets' key)
    from harness.recipe.fields import plugin_settings, to_dict
    from harness.registry import LOSSES

    if variant.Settings is not None:
        key["variant_settings"] = to_dict(variant.settings(recipe))
    loss_settings = getattr(LOSSES[loss], "Settings", None)
    if loss_settings is not None:
        key["loss_settings"] = to_dict(plugin_settings(recipe.distill, loss, loss_settings))
    return key


def training_seed(recipe) -> int:
    """The seed of everything a training run draws: the recipe's ``seed`` when ``train.seed`` is 0 (so a
    recipe run before training seeds existed trains the same student), else a number derived from both."""
    if recipe.train.seed == 0:
        return recipe.seed
    return int.from_bytes(hashlib.sha256(f"{recipe.seed}:{recipe.train.seed}".encode()).digest()[:4], "big")


def student_stage(store: Store, recipe, train: Dataset, *, groups: "Stage | None" = None, targets=None,
                  target_key: Any = None, init: "Stage | None" = None, plugins: "dict | None" = None,
                  extra_step: "Callable | None" = None, refresh: "Callable | None" = None) -> Stage:
    """The student of ``recipe`` (its ``[student]``, ``[train]``, ``[distill]``, ``[negatives]``,
    ``data.doc_fields`` and seeds), trained on ``groups`` of ``train`` towards ``targets`` (identified by
    ``target_key``) when its variant trains; ``init``: a trained student's stage to start from;
    ``extra_step(student, doc_text, seed)`` and ``refresh(doc_text, targets)``: the variant's hooks."""
    from harness.distill.variants import variant_of
    from harness.students.families import family_of

    variant, family = variant_of(recipe), family_of(recipe)
    ident = identity(recipe)
    if init is not None:  # a self-distilled student's teacher, or the student of student.init_recipe
        ident["backbone"] = f"{'self-teacher' if recipe.distill.variant == 'self' else 'student'}:{init.hash}"
    key: dict[str, Any] = {"student": ident, "variant": recipe.distill.variant,
                           "calibration": train.corpus_fingerprint(), "seed": recipe.seed}
    if plugins:  # their source: editing a plug-in retrains what it trains
        key["plugins"] = plugins
    # (absent when 0, so students trained before training seeds existed keep their hash; absent for an untrained
    # student that draws nothing, so every seed shares it and its indexes)
    if recipe.train.seed and (variant.trains or family.random_init):
        key["train_seed"] = recipe.train.seed
    if variant.trains:
        # (settings added since, at their defaults, are left out: students trained before them keep their key)
        train_cfg = {k: v for k, v in vars(recipe.train).items()
                     if k not in ("checkpoint_every", "seed") and NEW_TRAIN_DEFAULTS.get(k, ...) != v}
        key.update(groups=groups.hash, targets=target_key, distill=distill_key(recipe), train=train_cfg,
                   **family.student_key(recipe))
    stage = store.stage(f"student-{recipe.student.family}", key, scope=SHARED)
    with stage.ensure(collective=True) as out:  # under torchrun each rank trains on its share of each batch
        if out is not None:
            stage.info.update(_train(recipe, train, stage, out, groups if variant.trains else None, targets,
                                     init, extra_step, refresh))
    return stage


def _train(recipe, train: Dataset, stage: Stage, out: Path, groups, targets, init, extra_step,
           refresh) -> dict[str, Any]:
    import torch

    from harness.distill.trainer import Objective, make_examples, train_student
    from harness.encoding import get_device
    from harness.models import resolve_model
    from harness.stages.groups import read
    from harness.students import build_student, student_settings
    from harness.students.families import family_of

    fields = recipe.data.doc_fields
    docs = train.doc_store()
    seed = training_seed(recipe)
    torch.manual_seed(seed)
    calibration = [d.contents(fields) for _, d in zip(range(64), train.docs())]
    backbone = init.dir / "model" if init is not None else resolve_model(recipe.student.model, "student.model")
    student = build_student(recipe.student.family, backbone, student_settings(recipe), calibration).to(get_device())
    if recipe.train.dropout >= 0:
        for m in student.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = recipe.train.dropout
    info: dict[str, Any] = {"device": str(get_device()), "initialised_from": str(backbone)}
    info.update(family_of(recipe).adapt(student, recipe, (d.contents(fields) for d in train.docs())))
    from harness import distributed

    if distributed.active():
        info["ranks"] = distributed.size()
    if groups is not None:
        doc_text = lambda d: docs[d].contents(fields)  # noqa: E731
        examples = make_examples(read(groups), recipe.negatives.count + 1)
        objective = Objective(recipe.student.family, recipe.distill, family_of(recipe).regulariser(recipe))
        objective = objective.to(get_device())
        scratch = stage.dir.with_name(stage.dir.name + ".partial")
        extra = extra_step(student, doc_text, seed) if extra_step is not None else None
        if extra is not None:
            objective.add_module("aux", extra)  # its parameters (e.g. an MLM head) train with the student
        if hasattr(targets, "prepare"):  # a teacher in the step: its passages in one fixed plan, resumable
            targets.prepare(examples, train.queries, scratch / "teacher" if distributed.is_main() else None)
        hook = refresh(doc_text, targets) if refresh is not None else None
        info.update(train_student(student, examples, train.queries, doc_text, targets, objective, recipe.train,
                                  seed, out, scratch, extra_step=extra, refresh=hook,
                                  learning_rates=family_of(recipe).learning_rates(recipe, student)))
        if hasattr(targets, "teacher") and hasattr(targets.teacher, "calls"):
            info["teacher_calls"] = targets.teacher.calls
        if distributed.is_main():
            shutil.rmtree(scratch, ignore_errors=True)
    if distributed.is_main():  # rank 0 writes
        student.save(out / "model")
    return info


def load(stage: Stage):
    """The student a student stage saved."""
    from harness.students import load_student

    return load_student(stage.dir / "model")
