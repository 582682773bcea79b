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
    from harness.teachers import model_identity

    s = ctx.recipe.student
    return {"family": s.family, "backbone": model_identity(s.model, "student.model"),
            "settings": student_settings(ctx.recipe), "fields": list(ctx.recipe.data.doc_fields),
            "torch": package_versions().get("torch"), "transformers": package_versions().get("transformers")}


def _targets(ctx: RunContext) -> tuple[Any, dict[str, Any]]:
    """(target source, what identifies it) for the recipe's variant."""
    from harness.distill import targets as T

    variant = ctx.recipe.distill.variant
    if variant == "static":
        from harness.distill.answer_key import answer_key_stage, load_answer_key

        stage = answer_key_stage(ctx)
        return T.StaticTargets(load_answer_key(ctx)), {"answer-key": stage.hash}
    if variant == "online":
        from harness.distill.groups import train_dataset
        from harness.index.stages import load_bm25_run
        from harness.teachers import make_teacher, teacher_key

        train = train_dataset(ctx)
        return (T.OnlineTargets(make_teacher(ctx, train), load_bm25_run(ctx, train, ctx.recipe.negatives.depth)),
                {"teacher": teacher_key(ctx)})
    if variant == "margin":
        return T.MarginTargets(ctx.recipe.distill.margin), {"margin": ctx.recipe.distill.margin}
    raise NotImplementedError(f"distill.variant {variant!r} is not available yet")


def student_stage(ctx: RunContext) -> Stage:
    """The student, trained by the recipe's variant (or only initialised, for variant "none")."""
    from harness.distill.groups import groups_stage, train_dataset

    r = ctx.recipe
    train = train_dataset(ctx)
    key: dict[str, Any] = {"student": _student_identity(ctx), "variant": r.distill.variant,
                           "calibration": train.corpus_fingerprint(), "seed": r.seed}
    targets = None
    if r.distill.variant != "none":
        targets, target_key = _targets(ctx)
        train_cfg = {k: v for k, v in vars(r.train).items() if k != "checkpoint_every"}
        key.update(groups=groups_stage(ctx).hash, targets=target_key, distill=vars(r.distill), train=train_cfg,
                   flops={k: v for k, v in vars(r.student.splade).items() if k in ("lambda_q", "lambda_d", "flops_ramp")}
                   if r.student.family == "splade" else None)
    stage = ctx.store.stage(f"student-{r.student.family}", key, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            stage.info.update(_train(ctx, stage, out, targets))
    return stage


def _train(ctx: RunContext, stage: Stage, out: Path, targets) -> dict[str, Any]:
    import torch

    from harness.distill.groups import load_groups, train_dataset
    from harness.distill.trainer import Objective, make_examples, train_student
    from harness.encoding import get_device
    from harness.models import resolve_model
    from harness.students import build_student, student_settings

    r = ctx.recipe
    train = train_dataset(ctx)
    fields = r.data.doc_fields
    docs = train.doc_store()
    torch.manual_seed(r.seed)
    calibration = [d.contents(fields) for _, d in zip(range(64), train.docs())]
    student = build_student(r.student.family, resolve_model(r.student.model, "student.model"),
                            student_settings(r), calibration).to(get_device())
    info: dict[str, Any] = {"device": str(get_device())}
    if targets is not None:
        examples = make_examples(load_groups(ctx), r.negatives.count + 1)
        objective = Objective(r.student.family, r.distill, r.student.splade).to(get_device())
        scratch = stage.dir.with_name(stage.dir.name + ".partial")
        info.update(train_student(student, examples, train.queries, lambda d: docs[d].contents(fields), targets,
                                  objective, r.train, r.seed, out, scratch))
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    student.save(out / "model")
    return info


def load_trained_student(ctx: RunContext):
    from harness.students import load_student

    stage = student_stage(ctx)
    return ctx.memo(f"student:{stage.hash}", lambda: load_student(stage.dir / "model"))


def student_index_stage(ctx: RunContext, ds: Dataset) -> Stage:
    from harness.index.students import index_corpus

    r = ctx.recipe
    trained = student_stage(ctx)
    family = r.student.family
    index_cfg = {"splade": {"impact": vars(r.index.impact)}, "colbert": {"plaid": {
        k: v for k, v in vars(r.index.plaid).items() if k in ("nbits", "kmeans_niters")}},
        "dense": {"faiss": vars(r.index.faiss)}}[family]
    stage = ctx.store.stage(f"{family}-index", {"student": trained.hash, "corpus": ds.corpus_fingerprint(),
                                               "fields": list(r.data.doc_fields), **index_cfg,
                                               "versions": package_versions()}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            student = load_trained_student(ctx)
            docs = list(ds.docs())
            stage.info.update(index_corpus(family, student, [d.doc_id for d in docs],
                                           [d.contents(r.data.doc_fields) for d in docs], out, r.index))
    return stage


def student_method(ctx: RunContext, ds: Dataset):
    """The pipeline's ``student`` method: a run file from the student's index (+ exact search figures)."""
    from harness.evaluate import write_trec
    from harness.index.students import overlap_at_k, search_corpus

    r = ctx.recipe
    index = student_index_stage(ctx, ds)
    n_docs = index.info.get("documents", 0)
    exact = r.index.exact == "always" or (r.index.exact == "auto" and n_docs <= r.index.exact_max_docs)
    search_cfg = vars(r.index.plaid) if r.student.family == "colbert" else {}
    key = {"index": index.hash, "topics": ds.topics_fingerprint(), "depth": r.eval.depth, "exact": exact,
           "search": search_cfg, "latency_queries": r.index.latency_queries}

    def produce(out: Path) -> dict[str, Any]:
        student = load_trained_student(ctx)
        t0 = time.perf_counter()
        run, exact_run, figures = search_corpus(r.student.family, student, index.dir, ds.queries, r.eval.depth,
                                                r.index, exact)
        write_trec(run, out / "run.trec", tag=ctx.loaded.name)
        if exact_run is not None:
            write_trec(exact_run, out / "exact.trec", tag=f"{ctx.loaded.name}-exact")
            for k in (10, 100):
                figures[f"overlap@{k}_vs_exact"] = round(overlap_at_k(run, exact_run, k), 4)
        figures["retrieve_seconds"] = round(time.perf_counter() - t0, 2)
        return figures

    return key, produce
