"""Stage 3, the teacher: a cross-encoder fine-tuned here (optional), the teacher's identity, and the teacher
reranking BM25's top-k of an eval set (the upper reference row of every table).

:func:`teacher_key` identifies the teacher by model identities, not paths, so every recipe with the same
teacher shares one answer key and one reranker run. :func:`build_teacher` builds it over one corpus (a run
loads each model once and encodes each passage once: the graph memoises it)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

from harness.artifacts import SHARED, Stage, Store
from harness.artifacts.environment import package_versions
from harness.data import Dataset
from harness.evaluate import write_trec
from harness.models import model_identity, resolve_model
from harness.teachers.base import Request, Teacher


def members(teacher) -> list[str]:
    return list(teacher.ensemble.members) if teacher.kind == "ensemble" else [teacher.kind]


def check_models(teacher) -> None:
    """Resolve every model ``[teacher]`` needs (raises ModelError), before any expensive work."""
    parts = members(teacher)
    if "cross-encoder" in parts:
        if teacher.finetune.enabled:
            resolve_model(teacher.finetune.backbone, "teacher.finetune.backbone")
        else:
            resolve_model(teacher.model, "teacher.model")
    if "bi-encoder" in parts:
        resolve_model(teacher.bi_encoder.model, "teacher.bi_encoder.model")


def finetune_stage(store: Store, ft, groups: Stage, train: Dataset, fields, seed: int,
                   checkpoint_every: int) -> Stage:
    """A cross-encoder fine-tuned from ``teacher.finetune.backbone`` on the training ``groups``."""
    from harness.stages.groups import read
    from harness.teachers.finetune import finetune_cross_encoder

    stage = store.stage("teacher-finetune", {
        "backbone": model_identity(ft.backbone, "teacher.finetune.backbone"), "groups": groups.hash,
        "corpus": train.corpus_fingerprint(), "fields": list(fields),
        "config": {k: v for k, v in vars(ft).items() if k != "enabled"}, "seed": seed,
        "transformers": package_versions().get("transformers"), "loop": "students",
    }, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            scratch = stage.dir.with_name(stage.dir.name + ".partial")  # checkpoints: a kill resumes here
            stage.info.update(finetune_cross_encoder(
                resolve_model(ft.backbone, "teacher.finetune.backbone"), read(groups), train.queries,
                train.doc_store(), fields, ft, seed, out, scratch, checkpoint_every))
            shutil.rmtree(scratch, ignore_errors=True)
    return stage


def teacher_key(teacher, fields, bm25, finetuned: "Stage | None",
                student: "TeacherStudent | None" = None) -> dict[str, Any]:
    """Everything that determines the teacher's scores: ``[teacher]``, ``data.doc_fields``, ``[bm25]`` (an
    ensemble member), the fine-tuned cross-encoder's stage when there is one, and the trained student's
    stage (with the lengths it reads) when a student teaches."""
    parts: dict[str, Any] = {"kind": teacher.kind, "fields": list(fields)}
    for member in members(teacher):
        if member == "cross-encoder":
            model = (f"finetuned:{finetuned.hash}" if finetuned is not None
                     else model_identity(teacher.model, "teacher.model"))
            parts["cross-encoder"] = {"model": model, "max_len": teacher.max_len}
        elif member == "bi-encoder":
            bi = teacher.bi_encoder
            parts["bi-encoder"] = {"model": model_identity(bi.model, "teacher.bi_encoder.model"),
                                   "pooling": bi.pooling, "normalize": bi.normalize,
                                   "query_max_len": bi.query_max_len, "doc_max_len": bi.doc_max_len}
        elif member == "student":
            if student is None:
                raise ValueError('the teacher names a "student" member but no trained student was given')
            parts["student"] = {"stage": student.stage.hash, "family": student.family,
                                "query_max_len": student.query_max_len, "doc_max_len": student.doc_max_len}
        else:
            parts["bm25"] = {"k1": bm25.k1, "b": bm25.b, "pyserini": package_versions().get("pyserini")}
    if teacher.kind == "ensemble":
        parts["weights"] = list(teacher.ensemble.weights)
        parts["normalize"] = teacher.ensemble.normalize
    return parts


def build_teacher(teacher, corpus: Dataset, fields, bm25, finetuned: "Stage | None",
                  bm25_index: Callable[[], Stage], student: "TeacherStudent | None" = None) -> Teacher:
    """``[teacher]`` over ``corpus``; ``bm25_index`` gives the corpus's BM25 index (an ensemble member),
    ``student`` the trained student that teaches (a "student" member)."""
    docs = corpus.doc_store()

    def trained() -> Teacher:
        from harness.teachers.student import StudentTeacher

        if student is None:
            raise ValueError('the teacher names a "student" member but no trained student was given')
        return StudentTeacher(student.load(), student.family, docs, fields, student.query_max_len,
                              student.doc_max_len)

    def cross() -> Teacher:
        from harness.teachers.cross_encoder import CrossEncoderTeacher

        path = finetuned.dir / "model" if finetuned is not None else resolve_model(teacher.model, "teacher.model")
        return CrossEncoderTeacher(path, docs, fields, teacher.max_len, teacher.batch_size)

    def bi() -> Teacher:
        from harness.teachers.bi_encoder import BiEncoderTeacher

        b = teacher.bi_encoder
        return BiEncoderTeacher(resolve_model(b.model, "teacher.bi_encoder.model"), docs, fields, b.pooling,
                                b.normalize, b.query_max_len, b.doc_max_len, teacher.batch_size)

    if teacher.kind == "cross-encoder":
        return cross()
    if teacher.kind == "bi-encoder":
        return bi()
    if teacher.kind == "student":
        return trained()
    from harness.index.lucene import BM25PairScorer
    from harness.teachers.ensemble import BM25Member, EnsembleTeacher

    def lexical() -> BM25Member:
        return BM25Member(BM25PairScorer(bm25_index().dir / "index", bm25.k1, bm25.b))

    build = {"cross-encoder": cross, "bi-encoder": bi, "bm25": lexical, "student": trained}
    parts = [(m, w, build[m]()) for m, w in zip(teacher.ensemble.members, teacher.ensemble.weights)]
    return EnsembleTeacher(parts, docs, fields, teacher.ensemble.normalize)


@dataclass(frozen=True)
class TeacherStudent:
    """The trained student that teaches (``[teacher.student]``): its stage, family, the lengths it reads texts
    at, and how to load it (once per run or suite)."""

    stage: Stage
    family: str
    query_max_len: int
    doc_max_len: int
    load: Callable[[], Any]


def rerank_stage(store: Store, key: dict[str, Any], candidates: Stage, ds: Dataset,
                 make: Callable[[], Teacher]) -> Stage:
    """The teacher (identified by ``key``, built by ``make``) reranking ``candidates``, a BM25 run of ``ds``."""
    from harness.stages.bm25 import read_run

    stage = store.stage("teacher-rerank", {"teacher": key, "candidates": candidates.hash,
                                           "corpus": ds.corpus_fingerprint(), "plan": "fixed-v1"}, scope=SHARED)
    with stage.ensure() as out:
        if out is not None:
            t0 = time.perf_counter()
            pools = read_run(candidates)
            requests = [Request(qid, ds.queries[qid], [d for d, _ in hits], hits) for qid, hits in pools.items()]
            teacher = make()
            teacher.prepare(requests)  # this stage's passages in its own fixed plan, whatever ran before
            scores = teacher.score(requests)
            run = {r.qid: sorted(zip(r.doc_ids, map(float, s)), key=lambda h: -h[1]) for r, s in zip(requests, scores)}
            write_trec(run, out / "run.trec", tag="teacher")
            pairs = sum(len(r.doc_ids) for r in requests)
            seconds = time.perf_counter() - t0
            stage.info.update(pairs=pairs, seconds=round(seconds, 2), pairs_per_second=round(pairs / seconds, 1))
    return stage


__all__ = ["TeacherStudent", "build_teacher", "check_models", "finetune_stage", "members", "rerank_stage",
           "teacher_key"]
