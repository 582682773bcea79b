"""User plug-ins: a recipe names a file or module that registers a loss; errors name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.errors import RecipeError
from harness.recipe import load_recipe
from harness.registry import LOSSES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# (what the plug-ins change is what is tested: BM25 negatives from the top 10 and passages read at 128 tokens
# for the index keep the teacher's and the encoder's work small)
SLICE = ["--set", "train.max_queries=60", "--set", "train.epochs=1.0", "--set", "eval.max_queries=30",
         "--set", "eval.max_docs=300", "--set", "student.doc_max_len=96", "--set", "negatives.depth=10",
         "--set", "student.eval_doc_max_len=128",
         "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "eval.dev=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One runs directory for the module's end-to-end runs: BM25, the answer key, the untrained student once."""
    return tmp_path_factory.mktemp("plugin-runs")


def _recipe(tmp_path: Path, plugins: str, loss: str = "auto") -> Path:
    p = tmp_path / "r.toml"
    p.write_text(f'extends = "scifact/dense-static"\nplugins = {plugins}\n[distill]\nloss = "{loss}"\n')
    return p


def test_a_plugin_file_registers_a_loss_the_recipe_may_name(tmp_path):
    (tmp_path / "my_loss.py").write_text(
        "import torch\nfrom harness.registry import LOSSES\n\n"
        "@LOSSES.register('plugin-test-l1')\nclass L1(torch.nn.Module):\n"
        "    @classmethod\n    def from_settings(cls, distill):\n        return cls()\n\n"
        "    def forward(self, s, t):\n        return (s - t).abs().mean()\n")
    try:
        loaded = load_recipe(str(_recipe(tmp_path, '["my_loss.py"]', "plugin-test-l1")))
        assert loaded.recipe.distill.loss == "plugin-test-l1" and "plugin-test-l1" in LOSSES
        assert list(loaded.plugins) == ["my_loss.py"] and len(loaded.plugins["my_loss.py"]) == 64
        again = load_recipe(str(_recipe(tmp_path, '["my_loss.py"]', "plugin-test-l1")))  # imported once
        assert again.hash == loaded.hash
        plain = load_recipe("scifact/dense-static")
        assert loaded.hash != plain.hash
    finally:
        LOSSES._items.pop("plugin-test-l1", None)


def test_plugin_errors_are_one_line_naming_the_file_field_and_line(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(str(_recipe(tmp_path, '["missing.py"]')))
    assert str(err.value).endswith(f"r.toml: plugins[0]: file not found: missing.py (looked in {tmp_path})")
    (tmp_path / "broken.py").write_text("x = 1\ndef f(:\n")
    with pytest.raises(RecipeError, match=r"plugins\[0\]: broken.py: cannot load: SyntaxError: .*\(line 2\)"):
        load_recipe(str(_recipe(tmp_path, '["broken.py"]')))
    (tmp_path / "raises.py").write_text("\n\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(RecipeError, match=r"raises.py: cannot load: RuntimeError: no GPU here \(line 3\)"):
        load_recipe(str(_recipe(tmp_path, '["raises.py"]')))
    with pytest.raises(RecipeError, match=r"plugins\[0\]: no file or module named 'no_such_plugin_mod'"):
        load_recipe(str(_recipe(tmp_path, '["no_such_plugin_mod"]')))
    with pytest.raises(RecipeError, match=r"plugins: expected a list of strings"):
        load_recipe(str(_recipe(tmp_path, '"x.py"')))


def test_validate_loads_the_example_plugin():
    out = run_cli("validate", str(EXAMPLES / "ranknet.toml"))
    assert out.returncode == 0, out.stderr
    assert "example-dense-ranknet" in out.stdout


@pytest.mark.e2e
def test_the_example_loss_plugin_trains_a_student_end_to_end(runs, data_dir):
    """examples/ranknet.toml on a SciFact slice: the plug-in's loss is what trains the dense student (not the
    default Margin-MSE) and the student it gives is not the untrained one. (Whether it *beats*
    the untrained all-MiniLM-L6-v2 is not for a slice of 60-150 queries and one epoch to say: measured with
    150, 0.7996 against 0.8163 nDCG@10.)"""
    out = run_cli("run", str(EXAMPLES / "ranknet.toml"), "--runs-dir", str(runs), "--json", *SLICE)
    assert out.returncode == 0, out.stderr[-3000:]
    trained = last_json_line(out.stdout)
    assert trained["training"]["loss"] == "ranknet"
    assert trained["training"]["steps"] > 0
    untrained = last_json_line(run_cli("run", "scifact/dense-untrained", "--runs-dir", str(runs), "--json",
                                       *SLICE).stdout)
    ds = "beir/scifact/test[q30,d300]"
    assert trained["results"][ds] != untrained["results"][ds]
    student = _student_stage(trained)
    assert student["key"]["distill"]["loss"] == "ranknet" and "plugins" in student["key"]


def _student_stage(payload) -> dict:
    import json

    stages = json.loads((Path(payload["run_dir"]) / "manifest.json").read_text())["stages"]
    stage_dir = Path([s for s in stages if s["name"].startswith("student-")][-1]["dir"])
    return json.loads((stage_dir / "manifest.json").read_text())


def test_the_example_variant_turns_teacher_scores_into_rank_gains():
    import torch

    from harness.distill.targets import StaticTargets

    load_recipe(str(EXAMPLES / "rank_targets.toml"))  # registers static-ranks
    from harness.registry import VARIANTS

    variant = VARIANTS["static-ranks"]
    assert variant.uses_teacher and variant.scaled_targets
    ranks = __import__("sys").modules[variant.__module__].RankTargets(
        StaticTargets({("q", "a"): 0.2, ("q", "b"): 3.0, ("q", "c"): -1.0}))
    t = ranks(["q"], [("a", "b", "c")], {}, torch.device("cpu"))
    assert torch.allclose(t, 1.0 / torch.log2(torch.tensor([[3.0, 2.0, 4.0]])))


@pytest.mark.e2e
@pytest.mark.slow  # the loss example keeps a plug-in end to end in the default run
def test_the_example_variant_plugin_trains_a_student_end_to_end(runs, data_dir):
    out = run_cli("run", str(EXAMPLES / "rank_targets.toml"), "--runs-dir", str(runs), "--json", *SLICE)
    assert out.returncode == 0, out.stderr[-3000:]
    trained = last_json_line(out.stdout)
    assert trained["training"]["steps"] > 0  # (a few steps on the slice: too few for a loss trend to mean much)
    assert "reference" in trained  # a teacher-based variant: the teacher is checked against BM25
    untrained = last_json_line(run_cli("run", "scifact/dense-untrained", "--runs-dir", str(runs), "--json",
                                       *SLICE).stdout)
    ds = "beir/scifact/test[q30,d300]"
    assert trained["results"][ds] != untrained["results"][ds]
    key = _student_stage(trained)["key"]
    assert key["variant"] == "static-ranks" and "ranks-of" in key["targets"]


def test_a_plugin_loss_table_is_validated_like_a_builtin_one_and_keys_the_student(tmp_path):
    """examples/ranknet_loss.py declares ``[distill.ranknet]``: types, checks and unknown keys are reported with
    the file and field as for built-in tables; its values reach the loss and the student's cache key."""
    from harness.distill.trainer import Objective
    from harness.stages.student import distill_key

    r = tmp_path / "r.toml"
    r.write_text(f'extends = "{EXAMPLES / "ranknet.toml"}"\nname = "r"\nplugins = ["{EXAMPLES / "ranknet_loss.py"}"]\n'
                 '[distill.ranknet]\nsigma = "wide"\n')
    with pytest.raises(RecipeError) as err:
        load_recipe(str(r))
    assert str(err.value).splitlines()[-1].endswith('r.toml: distill.ranknet.sigma: expected a positive number, got "wide"')
    with pytest.raises(RecipeError, match=r'distill.ranknet.sgima: unknown key; did you mean "sigma"\?'):
        load_recipe(str(EXAMPLES / "ranknet.toml"), ["distill.ranknet.sgima=2"])
    with pytest.raises(RecipeError, match=r"distill.ranknet.sigma: expected a positive number, got -1"):
        load_recipe(str(EXAMPLES / "ranknet.toml"), ["distill.ranknet.sigma=-1"])
    with pytest.raises(RecipeError, match=r'distill.ranknt: unknown key; did you mean "ranknet"\?'):
        load_recipe(str(EXAMPLES / "ranknet.toml"), ["distill.ranknt.sigma=2"])

    one, two = load_recipe(str(EXAMPLES / "ranknet.toml")), load_recipe(str(EXAMPLES / "ranknet.toml"),
                                                                      ["distill.ranknet.sigma=2.5"])
    assert one.config["distill"]["ranknet"] == {"sigma": 1.0} and one.hash != two.hash
    assert distill_key(one.recipe)["loss_settings"] == {"sigma": 1.0}
    assert distill_key(two.recipe)["loss_settings"] == {"sigma": 2.5}
    assert Objective("dense", two.recipe.distill).main.sigma == 2.5
    # a recipe that leaves the table out trains with its defaults (and says so in the key)
    r.write_text(f'extends = "scifact/dense-static"\nplugins = ["{EXAMPLES / "ranknet_loss.py"}"]\n'
                 '[distill]\nloss = "ranknet"\n')
    assert distill_key(load_recipe(str(r)).recipe)["loss_settings"] == {"sigma": 1.0}
    # built-in recipes are untouched: no plug-in tables in their key
    assert "loss_settings" not in distill_key(load_recipe("scifact/dense-static").recipe)


def test_plugin_family_and_variant_tables_are_validated_and_read(tmp_path):
    """A plug-in family's ``[student.<name>]`` and a plug-in variant's ``[distill.<name>]``."""
    from harness.registry import FAMILIES, VARIANTS
    from harness.stages.student import distill_key
    from harness.students import student_settings

    (tmp_path / "fam.py").write_text(
        "from dataclasses import dataclass\n"
        "from harness.recipe.fields import param, positive\n"
        "from harness.registry import FAMILIES, VARIANTS\n"
        "from harness.students.families import DenseFamily\n"
        "from harness.distill.variants import Static\n\n"
        "@dataclass(frozen=True)\nclass Matryoshka:\n"
        "    dim: int = param(64, doc='Kept dimensions.', check=positive)\n\n"
        "@FAMILIES.register('plugin-test-mrl')\nclass MRL(DenseFamily):\n"
        "    name, Settings = 'plugin-test-mrl', Matryoshka\n\n"
        "@dataclass(frozen=True)\nclass Sharpen:\n"
        "    power: float = param(2.0, doc='Target exponent.')\n\n"
        "@VARIANTS.register('plugin-test-sharp')\nclass Sharp(Static):\n"
        "    name, Settings = 'plugin-test-sharp', Sharpen\n")
    r = tmp_path / "r.toml"
    r.write_text('extends = "scifact/dense-static"\nplugins = ["fam.py"]\n[student]\nfamily = "plugin-test-mrl"\n'
                 '[student.plugin-test-mrl]\ndim = 0\n[distill]\nvariant = "plugin-test-sharp"\n'
                 '[distill.plugin-test-sharp]\npower = "x"\n')
    try:
        with pytest.raises(RecipeError) as err:
            load_recipe(str(r))
        lines = str(err.value).splitlines()
        assert any(x.endswith("r.toml: student.plugin-test-mrl.dim: expected a positive integer, got 0")
                   for x in lines), lines
        assert any(x.endswith('r.toml: distill.plugin-test-sharp.power: expected a number, got "x"')
                   for x in lines), lines
        good = load_recipe(str(r), ["student.plugin-test-mrl.dim=32", "distill.plugin-test-sharp.power=3"])
        family = FAMILIES["plugin-test-mrl"]()
        assert family.section(good.recipe).dim == 32
        assert VARIANTS["plugin-test-sharp"]().settings(good.recipe).power == 3.0
        assert distill_key(good.recipe)["variant_settings"] == {"power": 3.0}
        assert good.config["student"]["plugin-test-mrl"] == {"dim": 32}
        # defaults when the recipe has no table; a table for a family without Settings stays an unknown key
        r.write_text('extends = "scifact/dense-static"\nplugins = ["fam.py"]\n[student]\nfamily = "plugin-test-mrl"\n')
        assert family.section(load_recipe(str(r)).recipe).dim == 64
        with pytest.raises(RecipeError, match=r"student.plugin-test-other: unknown key"):
            load_recipe(str(r), ["student.plugin-test-other.dim=1"])
        assert "dim" not in student_settings(load_recipe("scifact/dense-static").recipe)
    finally:
        FAMILIES._items.pop("plugin-test-mrl", None)
        VARIANTS._items.pop("plugin-test-sharp", None)



@pytest.mark.e2e
def test_the_example_family_plugin_builds_indexes_and_searches_end_to_end(tmp_path, data_dir):
    """examples/matryoshka.toml: a student family from a plug-in (its student, family and index registered in
    one file, its [student.dense-mrl] table read): the untrained student on a slice, 128-d vectors in the
    index, and a search that is not the 384-d one's."""
    import json

    import numpy as np

    runs = tmp_path / "runs"
    small = ["--set", 'distill.variant="none"', "--set", "eval.max_queries=20", "--set", "eval.max_docs=300",
             "--set", "eval.dev=false", "--set", 'eval.datasets=["beir/scifact/test"]',
             "--set", "student.eval_doc_max_len=128"]
    out = run_cli("run", str(EXAMPLES / "matryoshka.toml"), "--runs-dir", str(runs), "--json", *small)
    assert out.returncode == 0, out.stderr[-3000:]
    mrl = last_json_line(out.stdout)
    (vectors,) = runs.glob("_shared/dense-mrl-index-*/index/vectors.npy")
    assert np.load(vectors).shape == (300, 128)
    (meta,) = runs.glob("_shared/student-dense-mrl-*/model/harness_student.json")
    assert json.loads(meta.read_text()) == {**json.loads(meta.read_text()), "family": "dense-mrl"}
    assert json.loads(meta.read_text())["settings"]["dim"] == 128
    full = last_json_line(run_cli("run", "scifact/dense-untrained", "--runs-dir", str(runs), "--json", *small[2:]).stdout)
    ds = "beir/scifact/test[q20,d300]"
    assert mrl["results"][ds] != full["results"][ds]
    out = run_cli("validate", str(EXAMPLES / "matryoshka.toml"), "--set", "student.dense-mrl.dim=0")
    assert out.returncode == 2 and "student.dense-mrl.dim: expected a positive integer, got 0" in out.stderr
