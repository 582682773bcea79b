"""A student that starts from another recipe's trained student (``student.init_recipe``), of any family: that
recipe runs first (suite and cluster), its student stage is this student's backbone in the key, the weights are
the trained ones, and a bad reference fails before any work."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import assert_refused_before_any_work, last_json_line, run_cli

SCIFACT = Path(__file__).resolve().parent.parent / "recipes" / "scifact"


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_a_self_distilled_student_cannot_also_start_from_another_recipe():
    from harness.errors import RecipeError
    from harness.recipe import load_recipe

    init = ['student.init_recipe="scifact/dense-multitask"']
    with pytest.raises(RecipeError, match=r"student\.init_recipe: a self-distilled student starts from its teacher"):
        load_recipe("scifact/splade-self", init)
    # without the teacher's weights it may start elsewhere
    assert load_recipe("scifact/splade-self", [*init, "distill.self.init_from_teacher=false"]).recipe


def test_the_student_it_starts_from_is_its_backbone_in_the_key():
    from types import SimpleNamespace

    from harness.recipe import load_recipe
    from harness.stages.graph import needed_recipes
    from harness.stages.student import identity

    plain = load_recipe("scifact/splade-multitask").recipe
    init = load_recipe("scifact/splade-multitask", ['student.init_recipe="scifact/dense-multitask"']).recipe
    assert identity(plain) == identity(init)  # the field alone changes nothing: the stage adds the init's hash
    assert needed_recipes(init) == ["scifact/dense-multitask"] and needed_recipes(plain) == []

    # the label in the key: a self-distilled student's teacher keeps its (cached students keep their hash)
    from harness.stages import student as stage_mod

    seen = {}

    class Store:
        def stage(self, name, key, scope=None):
            seen[name] = key
            raise StopIteration

    train = SimpleNamespace(corpus_fingerprint=lambda: "c")
    for r in (init, load_recipe("scifact/splade-self").recipe):
        with pytest.raises(StopIteration):
            stage_mod.student_stage(Store(), r, train, init=SimpleNamespace(hash="a" * 64), groups=SimpleNamespace(hash="g"),
                                    targets=None, target_key=None)
        label = "self-teacher" if r.distill.variant == "self" else "student"
        assert seen["student-splade"]["student"]["backbone"] == f"{label}:{'a' * 64}"


def test_a_recipe_that_starts_from_another_runs_after_it(tmp_path):
    from harness.cluster import plan
    from harness.suite import suite_recipes

    _write(tmp_path / "a-splade.toml", f"""
        extends = "{SCIFACT / '_splade.toml'}"
        name = "a-splade"
        [student]
        init_recipe = "{tmp_path / 'z-dense.toml'}"
        """)
    _write(tmp_path / "z-dense.toml", f"""
        extends = "{SCIFACT / '_dense.toml'}"
        name = "z-dense"
        """)
    assert [x.name for x in suite_recipes(tmp_path)] == ["z-dense", "a-splade"]
    jobs = {j.name: j for j in plan(suite_recipes(tmp_path))}
    assert "z-dense" in jobs["a-splade"].needs


@pytest.mark.parametrize("spec, words", [("scifact/nope", "scifact/nope: recipe not found"),
                                         ("scifact/dense-untrained", "must train a student")])
def test_a_bad_init_recipe_fails_before_any_work(tmp_path, data_dir, spec, words):
    assert_refused_before_any_work(tmp_path / "runs", "scifact/splade-static", [f'student.init_recipe="{spec}"'],
                                   "student.init_recipe", words)


@pytest.mark.slow  # 3.6 min on 2 cores (a dense training, its answer key and BM25 over the training corpus)
def test_a_splade_student_starts_from_a_trained_dense_student_end_to_end(tmp_path, data_dir, fp32):
    """On a SciFact slice: the untrained SPLADE student of a recipe that starts from the dense student another
    recipe trains holds that student's trained encoder weights (its MLM head built on them); the dense student
    is trained once, by this run; a re-run reuses everything."""
    import torch
    from safetensors.torch import load_file

    args = ["run", "scifact/splade-untrained", "--runs-dir", str(tmp_path), "--json",
            "--set", "train.max_queries=24", "--set", "train.epochs=1.0", "--set", "eval.max_queries=20",
            "--set", "eval.max_docs=200", "--set", "student.doc_max_len=64",
            "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "eval.dev=false",
            "--set", 'student.init_recipe="scifact/dense-static"']
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = last_json_line(out.stdout)
    stages = json.loads((Path(payload["run_dir"]) / "manifest.json").read_text())["stages"]
    dense = [s for s in stages if s["name"] == "student-dense"]
    splade = [s for s in stages if s["name"] == "student-splade"]
    assert len(dense) == 1 and len(splade) == 1, [s["name"] for s in stages]
    dense_dir, splade_dir = Path(dense[0]["dir"]) / "model", Path(splade[0]["dir"]) / "model"
    info = json.loads((Path(splade[0]["dir"]) / "manifest.json").read_text())["info"]
    assert info["initialised_from"] == str(dense_dir)
    trained = load_file(dense_dir / "model.safetensors")
    got = load_file(splade_dir / "model.safetensors")
    name = "encoder.layer.5.attention.self.query.weight"
    dense_key = next(k for k in trained if k.endswith(name))
    splade_key = next(k for k in got if k.endswith(name))
    assert torch.equal(trained[dense_key], got[splade_key])  # the trained weights, not MiniLM's
    from harness.models import resolve_model

    minilm = load_file(Path(resolve_model("minilm", "student.model")) / "model.safetensors")
    assert not torch.equal(minilm[next(k for k in minilm if k.endswith(name))], got[splade_key])
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    stages = json.loads((Path(last_json_line(again.stdout)["run_dir"]) / "manifest.json").read_text())["stages"]
    assert [s["name"] for s in stages if not s["reused"]] == []
