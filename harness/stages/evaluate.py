"""Stage 8, evaluation: ir_measures over a run file and an eval set's qrels (per query and aggregate), and
the teacher-versus-BM25 reference a recipe with a teacher reports."""

from __future__ import annotations

import json
import logging
from typing import Any

from harness.artifacts import Stage, Store, atomic_write_json
from harness.artifacts.environment import package_versions
from harness.data import Dataset
from harness.evaluate import evaluate, read_trec, write_per_query

log = logging.getLogger("harness")


def evaluate_stage(store: Store, run_name: str, retrieve: Stage, ds: Dataset, measures) -> Stage:
    """``eval.measures`` of ``retrieve``'s run file on ``ds`` (per_query.tsv, metrics.json; metrics of the
    exhaustive search too when the retrieval wrote one)."""
    measures = list(measures)
    stage = store.stage(f"eval-{ds.slug}", {
        "run": retrieve.hash, "topics": ds.topics_fingerprint(), "measures": measures,
        "ir_measures": package_versions().get("ir-measures")}, scope=run_name)
    with stage.ensure() as out:
        if out is not None:
            aggregate, per_query = evaluate(read_trec(retrieve.dir / "run.trec"), ds.qrels, measures)
            write_per_query(per_query, measures, out / "per_query.tsv")
            metrics = {"dataset": ds.id, "queries": len(per_query), "measures": aggregate}
            if (retrieve.dir / "exact.trec").is_file():  # what the approximate index loses
                metrics["exact"], _ = evaluate(read_trec(retrieve.dir / "exact.trec"), ds.qrels, measures)
            atomic_write_json(out / "metrics.json", metrics)
            stage.info.update({"queries": len(per_query)})
    return stage


def metrics(stage: Stage) -> dict[str, Any]:
    return json.loads((stage.dir / "metrics.json").read_text())


def teacher_reference(pairs: "list[tuple[Dataset, Stage, Stage]]", measures, depth: int
                      ) -> "tuple[dict[str, Any], list[str]]":
    """Teacher-as-reranker vs BM25 at the same ``depth``, per eval set, from (dataset, teacher rerank stage,
    BM25 run stage) triples; returns the reference and a warning for each set the teacher is weaker on."""
    measures = list(measures)
    ref: dict[str, Any] = {"depth": depth, "teacher": {}, "bm25": {}}
    warnings = []
    for ds, teacher, bm25 in pairs:
        ref["teacher"][ds.id], _ = evaluate(read_trec(teacher.dir / "run.trec"), ds.qrels, measures)
        ref["bm25"][ds.id], _ = evaluate(read_trec(bm25.dir / "run.trec"), ds.qrels, measures)
        m = measures[0]
        t, b = ref["teacher"][ds.id][m], ref["bm25"][ds.id][m]
        log.info("teacher %s: reranking BM25 top-%d gives %s %.4f (BM25 %.4f)", ds.id, depth, m, t, b)
        if t < b:
            msg = (f"TEACHER WEAKER THAN BM25 on {ds.id}: {m} {t:.4f} < {b:.4f} reranking BM25's top-{depth}. "
                   "Its answer key would teach students to be worse than BM25; fix the teacher first.")
            log.warning("!" * 100 + "\n%s\n" + "!" * 100, msg)
            warnings.append(msg)
    return ref, warnings
