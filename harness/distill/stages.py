"""Cached stages of a student recipe: the trained student, its index over a corpus, and its runs.

    groups ─┬─ answer key (static) ─┐
            ├─ teacher (online) ────┼─▶ student-train ─▶ student-index (per corpus) ─▶ retrieve (per recipe)
            └─ larger student (self)┘

The trained student and its indexes are shared stages keyed by content, so a recipe that differs only in
its evaluation sets reuses them, and a self-distillation recipe finds its teacher-student by hash.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from harness.artifacts import SHARED, Stage
from harness.artifacts.environment import package_versions
from harness.context import RunContext
from harness.data import Dataset

log = logging.getLogger("harness")


def _student_identity(ctx: RunContext) -> dict[str, Any]:
    from harness.students import student_settings
    from harness.students.families import family_of
    from harness.teachers import model_identity

    s = ctx.recipe.student
    identity = {"family": s.family, "backbone": model_identity(s.model, "student.model"),
                "settings": student_settings(ctx.recipe), "fields": list(ctx.recipe.data.doc_fields),
                "torch": package_versions().get("torch"), "transformers": package_versions().get("transformers")}
    identity.update(family_of(ctx.recipe).identity(ctx.recipe))
    return identity


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
    if variant_of(recipe).scaled_targets:
        key["target_scale"] = d.target_scale
        if d.target_scale == "fixed":
            key["scale"] = [d.scale_a, d.scale_b]
    return key


def load_stage_student(stage: Stage):
    from harness.students import load_student

    return load_student(stage.dir / "model")


def self_teacher_context(ctx: RunContext) -> RunContext:
    """The run context of the recipe whose trained student teaches this one (same store, so same cache)."""
    from harness.errors import RecipeError
    from harness.recipe import load_recipe

    spec = ctx.recipe.distill.self.teacher

    def make() -> RunContext:
        # the same --set overrides as this run (a CI slice trains its teacher-student on the same slice)
        overrides = [o for o in ctx.loaded.overrides if o.split("=", 1)[0].strip() not in ("name", "description")]
        try:
            loaded = load_recipe(spec, overrides)
        except RecipeError as exc:  # name the field that points there, then what is wrong with it
            raise RecipeError([f"{ctx.loaded.source_of('distill.self.teacher')}: distill.self.teacher: {p}"
                               for p in exc.problems]) from None
        if loaded.recipe.method != "student" or loaded.recipe.distill.variant in ("none", "self"):
            raise RecipeError([f"{ctx.loaded.path}: distill.self.teacher: {spec} must train a student "
                               "(method \"student\", a variant other than none/self)"])
        if loaded.recipe.student.family != ctx.recipe.student.family:
            raise RecipeError([f"{ctx.loaded.path}: distill.self.teacher: {spec} trains a "
                               f"{loaded.recipe.student.family} student; self-distillation needs the same family "
                               f"({ctx.recipe.student.family})"])
        return RunContext(loaded, ctx.store, ctx.store.root / loaded.name, cache=ctx.cache)

    return ctx.memo(f"self-ctx:{spec}", make)


def self_teacher_stage(ctx: RunContext) -> Stage:
    return student_stage(self_teacher_context(ctx))


def training_seed(recipe) -> int:
    """The seed of everything a training run draws: the recipe's ``seed`` when ``train.seed`` is 0 (so a
    recipe run before training seeds existed trains the same student), else a number derived from both."""
    if recipe.train.seed == 0:
        return recipe.seed
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{recipe.seed}:{recipe.train.seed}".encode()).digest()[:4], "big")


def student_stage(ctx: RunContext) -> Stage:
    """The student, trained by the recipe's variant (or only initialised, for variant "none")."""
    from harness.distill.groups import groups_stage, train_dataset
    from harness.distill.variants import variant_of
    from harness.students.families import family_of

    r = ctx.recipe
    variant, family = variant_of(r), family_of(r)
    train = train_dataset(ctx)
    identity = _student_identity(ctx)
    init = variant.init_backbone(ctx)  # a trained student this one starts from (self-distillation)
    if init is not None:
        identity["backbone"] = f"self-teacher:{init.hash}"
    key: dict[str, Any] = {"student": identity, "variant": r.distill.variant,
                           "calibration": train.corpus_fingerprint(), "seed": r.seed}
    if ctx.loaded.plugins:  # their source: editing a plug-in retrains what it trains
        key["plugins"] = ctx.loaded.plugins
    # (absent when 0, so students trained before training seeds existed keep their hash; absent for an untrained
    # student that draws nothing, so every seed shares it and its indexes)
    if r.train.seed and (variant.trains or family.random_init):
        key["train_seed"] = r.train.seed
    targets = None
    if variant.trains:
        targets, target_key = variant.targets(ctx)
        train_cfg = {k: v for k, v in vars(r.train).items() if k not in ("checkpoint_every", "seed")}
        key.update(groups=groups_stage(ctx).hash, targets=target_key, distill=distill_key(r), train=train_cfg,
                   **family.student_key(r))
    stage = ctx.store.stage(f"student-{r.student.family}", key, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(_train(ctx, stage, out, targets))
    return stage


def _train(ctx: RunContext, stage: Stage, out: Path, targets) -> dict[str, Any]:
    import torch

    from harness.distill.groups import load_groups, train_dataset
    from harness.distill.trainer import Objective, make_examples, train_student
    from harness.distill.variants import variant_of
    from harness.encoding import get_device
    from harness.models import resolve_model
    from harness.students import build_student, student_settings
    from harness.students.families import family_of

    r = ctx.recipe
    train = train_dataset(ctx)
    fields = r.data.doc_fields
    docs = train.doc_store()
    seed = training_seed(r)
    torch.manual_seed(seed)
    calibration = [d.contents(fields) for _, d in zip(range(64), train.docs())]
    variant = variant_of(r)
    init = variant.init_backbone(ctx)
    backbone = init.dir / "model" if init is not None else resolve_model(r.student.model, "student.model")
    student = build_student(r.student.family, backbone, student_settings(r), calibration).to(get_device())
    info: dict[str, Any] = {"device": str(get_device()), "initialised_from": str(backbone)}
    if targets is not None:
        doc_text = lambda d: docs[d].contents(fields)  # noqa: E731
        examples = make_examples(load_groups(ctx), r.negatives.count + 1)
        objective = Objective(r.student.family, r.distill, family_of(r).regulariser(r)).to(get_device())
        scratch = stage.dir.with_name(stage.dir.name + ".partial")
        extra = variant.extra_step(ctx, student, doc_text, seed)
        if extra is not None:
            objective.add_module("aux", extra)  # its parameters (e.g. an MLM head) train with the student
        if hasattr(targets, "prepare"):  # a teacher in the step: its passages in one fixed plan, resumable
            targets.prepare(examples, train.queries, scratch / "teacher")
        refresh = variant.refresh(ctx, train, doc_text, targets)
        info.update(train_student(student, examples, train.queries, doc_text, targets, objective, r.train, seed,
                                  out, scratch, extra_step=extra, refresh=refresh))
        if hasattr(targets, "teacher") and hasattr(targets.teacher, "calls"):
            info["teacher_calls"] = targets.teacher.calls
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    student.save(out / "model")
    return info


def remine_hook(ctx: RunContext, train: Dataset, doc_text, targets=None):
    from harness.distill.remine import remine_examples, student_top_k

    cfg = ctx.recipe.distill.online
    docs = list(train.docs())
    positives = {q: {d for d, rel in judged.items() if rel > 0} for q, judged in train.qrels.items()}

    def refresh(student, examples, step):
        if step % cfg.remine_every:
            return None
        log.info("online: re-mining negatives with the student at step %d", step)
        top = student_top_k(student, [d.doc_id for d in docs], [doc_text(d.doc_id) for d in docs],
                            {q: train.queries[q] for q in {q for q, _ in examples}}, cfg.remine_depth)
        new = remine_examples(examples, top, positives, training_seed(ctx.recipe), step)
        if hasattr(targets, "prepare"):
            targets.prepare(new, train.queries)  # the new negatives, in a plan fixed by the new examples
        return new

    return refresh


def load_trained_student(ctx: RunContext):
    from harness.students import load_student

    stage = student_stage(ctx)
    return ctx.memo(f"student:{stage.hash}", lambda: load_student(stage.dir / "model"))


def student_index_stage(ctx: RunContext, ds: Dataset) -> Stage:
    from harness.index.students import index_corpus
    from harness.students import eval_lengths

    r = ctx.recipe
    _, doc_len = eval_lengths(r)
    trained = student_stage(ctx)
    from harness.students.families import family_of

    family = r.student.family
    approximate = r.index.search == "index"
    index_cfg = family_of(r).index_key(r) if approximate else {"search": "exact"}
    stage = ctx.store.stage(f"{family}-index", {"student": trained.hash, "corpus": ds.corpus_fingerprint(),
                                               "fields": list(r.data.doc_fields), "doc_max_len": doc_len,
                                               **index_cfg,
                                               "versions": package_versions()}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            student = load_trained_student(ctx)
            docs = list(ds.docs())
            stage.info.update(index_corpus(family, student, [d.doc_id for d in docs],
                                           [d.contents(r.data.doc_fields) for d in docs], out, r.index,
                                           doc_len, approximate))
    return stage


def student_method(ctx: RunContext, ds: Dataset):
    """The pipeline's ``student`` method: a run file from the student's index (+ exact search figures)."""
    from harness.evaluate import write_trec
    from harness.index.base import overlap_at_k
    from harness.index.students import search_corpus
    from harness.students import eval_lengths

    r = ctx.recipe
    query_len, _ = eval_lengths(r)
    index = student_index_stage(ctx, ds)
    n_docs = index.info.get("documents", 0)
    approximate = r.index.search == "index"
    exact = approximate and (r.index.exact == "always" or (r.index.exact == "auto" and n_docs <= r.index.exact_max_docs))
    from harness.students.families import family_of

    search_cfg = family_of(r).search_key(r) if approximate else {}
    key = {"index": index.hash, "topics": ds.topics_fingerprint(), "depth": r.eval.depth, "exact": exact,
           "search": search_cfg, "latency_queries": r.index.latency_queries, "query_max_len": query_len}

    def produce(out: Path) -> dict[str, Any]:
        student = load_trained_student(ctx)
        t0 = time.perf_counter()
        run, exact_run, figures = search_corpus(r.student.family, student, index.dir, ds.queries, r.eval.depth,
                                                r.index, exact, query_len, approximate)
        write_trec(run, out / "run.trec", tag=ctx.loaded.name)
        if exact_run is not None:
            write_trec(exact_run, out / "exact.trec", tag=f"{ctx.loaded.name}-exact")
            for k in (10, 100):
                figures[f"overlap@{k}_vs_exact"] = round(overlap_at_k(run, exact_run, k), 4)
        figures["retrieve_seconds"] = round(time.perf_counter() - t0, 2)
        return figures

    return key, produce
