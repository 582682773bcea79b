"""A trained student as the teacher (``teacher.kind = "student"`` or a "student" ensemble member): its scores
are the student's own, a recipe naming it runs after the recipe that trains it (suite and cluster), and a bad
reference fails before any work."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_refused_before_any_work, last_json_line, run_cli
from harness.data.dataset import Doc
from harness.teachers.base import Request

QUERIES = ["what causes muscle fatigue", "vitamin d and bone density"]
PASSAGES = ["Muscle fatigue follows the accumulation of metabolites during intense exercise.",
            "Vitamin D supplementation raised bone mineral density in older women over two years.",
            "The committee met on Tuesday.",
            "Lactate is not the cause of fatigue in skeletal muscle, contrary to the textbook view.",
            "Calcium and vitamin D intake in adolescents."]


@pytest.mark.parametrize("family", ["dense", "splade", "colbert"])
def test_a_student_teacher_scores_pairs_as_the_student_does(family, fp32):
    """Each family: the teacher's score of a pair is the student's own score of it (cosine, sparse dot, MaxSim
    from the training face), whatever else the request holds."""
    import torch

    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings
    from harness.teachers.student import StudentTeacher

    recipe = load_recipe(f"scifact/{family}-untrained").recipe
    student = build_student(family, resolve_model("minilm"), student_settings(recipe), PASSAGES)
    docs = {f"d{i}": Doc(f"d{i}", "", t) for i, t in enumerate(PASSAGES)}
    teacher = StudentTeacher(student, family, docs, ["text"], 32, 64)
    requests = [Request("q0", QUERIES[0], ["d0", "d2", "d3"]), Request("q1", QUERIES[1], ["d1", "d4", "d2"])]
    teacher.prepare(requests)
    got = teacher.score(requests)
    student.query_max_len, student.doc_max_len = 32, 64
    with torch.inference_mode():
        for r, scores in zip(requests, got):
            q = student.encode_queries([r.query])
            d = student.encode_docs([docs[x].text for x in r.doc_ids])
            want = student.score_groups(q, d)[0].float().numpy()
            assert scores == pytest.approx(want, rel=1e-4, abs=1e-4), family
    assert got[0][0] > got[0][1] and got[1][0] > got[1][2]  # on topic above "the committee met"
    (alone,) = teacher.score([Request("q0", QUERIES[0], ["d3"])])
    assert alone[0] == pytest.approx(got[0][2], rel=1e-4, abs=1e-4)
    assert teacher.calls == 2


def test_the_teachers_key_follows_the_trained_student_and_only_its_members():
    """Retraining the student that teaches is another teacher (another answer key); a student alone reads
    nothing of [bm25]; the shipped teacher's key is unchanged by the new member."""
    from types import SimpleNamespace

    from harness.recipe import load_recipe
    from harness.stages.teacher import TeacherStudent, teacher_key

    def key(overrides, stage_hash="a" * 64, k1=0.9):
        r = load_recipe("scifact/splade-static", overrides).recipe
        student = TeacherStudent(SimpleNamespace(hash=stage_hash), "dense", 256, 256, lambda: None)
        return teacher_key(r.teacher, r.data.doc_fields, SimpleNamespace(k1=k1, b=0.4), None, student)

    alone = ['teacher.kind="student"', 'teacher.student.recipe="scifact/dense-multitask"']
    assert "bm25" not in key(alone) and key(alone)["student"]["stage"] == "a" * 64
    assert key(alone, k1=1.2) == key(alone)
    assert key(alone, "b" * 64) != key(alone)
    fused = ['teacher.ensemble.members=["student","bm25"]', 'teacher.ensemble.weights=[0.8,0.2]',
             'teacher.student.recipe="scifact/dense-multitask"']
    assert key(fused, k1=1.2) != key(fused) and key(fused, "b" * 64) != key(fused)
    shipped = key([])
    assert set(shipped) == {"kind", "fields", "bi-encoder", "bm25", "weights", "normalize"}


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_recipes_taught_by_a_student_run_after_the_recipe_that_trains_it(tmp_path):
    """Suite order and cluster plan: the taught recipe (and its answer key's job) after the teacher-student's,
    a self-distilled student of a taught one after that, whatever the names' order."""
    from harness.cluster import plan
    from harness.suite import suite_recipes

    scifact = Path(__file__).resolve().parent.parent / "recipes" / "scifact"
    _write(tmp_path / "a-taught.toml", f"""
        extends = "{scifact / '_splade.toml'}"
        name = "a-taught"
        [teacher]
        kind = "ensemble"
        [teacher.ensemble]
        members = ["student", "bm25"]
        weights = [0.6, 0.4]
        [teacher.student]
        recipe = "{tmp_path / 'z-dense.toml'}"
        """)
    _write(tmp_path / "b-self.toml", f"""
        extends = "{scifact / '_splade.toml'}"
        name = "b-self"
        [student]
        layers = 3
        [distill]
        variant = "self"
        [distill.self]
        teacher = "{tmp_path / 'a-taught.toml'}"
        """)
    _write(tmp_path / "z-dense.toml", f"""
        extends = "{scifact / '_dense.toml'}"
        name = "z-dense"
        """)
    order = [x.name for x in suite_recipes(tmp_path)]
    assert order == ["z-dense", "a-taught", "b-self"]
    jobs = {j.name: j for j in plan(suite_recipes(tmp_path))}
    key_of = {name: next(n for n in jobs[name].needs if n.startswith("answer-key:")) for name in ("a-taught", "z-dense")}
    assert key_of["a-taught"] != key_of["z-dense"]  # two teachers, two answer keys
    assert jobs[key_of["a-taught"]].needs == ["z-dense"]  # the student that teaches is trained first
    assert "z-dense" in jobs["a-taught"].needs and "a-taught" in jobs["b-self"].needs
    names = [j.name for j in plan(suite_recipes(tmp_path))]
    assert names.index("z-dense") < names.index(key_of["a-taught"]) < names.index("a-taught") < names.index("b-self")


def test_a_student_teacher_without_a_recipe_is_refused_with_its_field(tmp_path):
    from harness.errors import RecipeError
    from harness.recipe import load_recipe

    with pytest.raises(RecipeError) as err:
        load_recipe("scifact/splade-static", ['teacher.kind="student"'])
    assert "teacher.student.recipe" in str(err.value)
    with pytest.raises(RecipeError) as err:
        load_recipe("scifact/splade-static", ['teacher.ensemble.members=["student","bm25"]'])
    assert "teacher.student.recipe" in str(err.value)
    with pytest.raises(RecipeError) as err:
        load_recipe("scifact/splade-static", ['teacher.ensemble.members=["students","bm25"]'])
    assert '"student"' in str(err.value) and "students" in str(err.value)


@pytest.mark.parametrize("spec, words", [("scifact/nope", "scifact/nope: recipe not found"),
                                         ("scifact/dense-untrained", "must train a student")])
def test_a_bad_teacher_student_fails_before_any_work(tmp_path, data_dir, spec, words):
    assert_refused_before_any_work(tmp_path / "runs", "scifact/splade-static",
                                   ['teacher.kind="student"', f'teacher.student.recipe="{spec}"'],
                                   "teacher.student.recipe", words)


@pytest.mark.e2e
def test_a_dense_student_teaches_colbert_end_to_end(tmp_path, data_dir, fp32):
    """On a SciFact slice: a ColBERT student taught by the dense student another recipe trains. The
    teacher-student is trained once, by this run; the answer key holds its cosines (recomputed here from the
    saved student); the teacher's reference row is that student reranking BM25; a re-run reuses everything."""
    import pyarrow.parquet as pq

    from harness.data import open_dataset
    from harness.students import load_student

    args = ["run", "scifact/colbert-static", "--runs-dir", str(tmp_path), "--json",
            "--set", "train.max_queries=24", "--set", "train.epochs=1.0", "--set", "eval.max_queries=20",
            "--set", "eval.max_docs=200", "--set", "student.doc_max_len=64",
            "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "eval.dev=false",
            "--set", 'teacher.kind="student"', "--set", 'teacher.student.recipe="scifact/dense-static"']
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = last_json_line(out.stdout)
    stages = json.loads((Path(payload["run_dir"]) / "manifest.json").read_text())["stages"]
    dense = [s for s in stages if s["name"] == "student-dense"]
    assert len(dense) == 1, [s["name"] for s in stages]  # the teacher-student, trained for this run
    keys = [Path(s["dir"]) for s in stages if s["name"] == "answer-key"]
    assert len(keys) == 2  # the teacher-student's (its MiniLM + BM25 teacher) and this run's, by the student
    key_dir = keys[-1]
    key = pq.read_table(key_dir / "answer_key.parquet").to_pandas()
    student = load_student(Path(dense[0]["dir"]) / "model")
    assert student.family == "dense" and student.normalize
    train = open_dataset("beir/scifact/train")
    docs = {d.doc_id: d for d in train.docs()}
    for q in list(dict.fromkeys(key.qid))[:3]:
        rows = key[key.qid == q]
        q_rep = student.infer_queries([train.queries[q]], 256)[0]
        d_reps = student.infer_docs([docs[p].contents(["title", "text"]) for p in rows.pid], 256)
        cos = np.array([float(np.dot(q_rep, d)) for d in d_reps])
        assert rows.score.to_numpy() == pytest.approx(cos, abs=2e-3)
    ref = payload["reference"]["teacher"]["beir/scifact/test[q20,d200]"]["nDCG@10"]
    assert ref > payload["reference"]["bm25"]["beir/scifact/test[q20,d200]"]["nDCG@10"] - 0.2
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    stages = json.loads((Path(last_json_line(again.stdout)["run_dir"]) / "manifest.json").read_text())["stages"]
    assert [s["name"] for s in stages if not s["reused"]] == []
