"""Fuzzing the recipe loader (hypothesis): whatever a recipe file or a ``--set`` holds — unknown keys, wrong
types, huge or non-finite numbers, odd strings, invalid UTF-8, deep nesting — loading either succeeds or
raises RecipeError whose lines each name the file (or --set) and the field. Never another exception.
Plus the ranges every numeric field must keep, and the load errors that used to be tracebacks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from harness.errors import RecipeError
from harness.recipe import load_recipe
from harness.recipe.schema import Recipe



def _fields(cls: type, prefix: str = "") -> list[str]:
    """Every dotted field name of the schema (nested sections flattened)."""
    import dataclasses
    import typing

    hints, out = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_fields(hints[f.name], f"{prefix}{f.name}."))
        else:
            out.append(f"{prefix}{f.name}")
    return out


FIELDS = _fields(Recipe)
SECTIONS = sorted({f.split(".")[0] for f in FIELDS if "." in f})
CASES = 400  # per property; three properties

scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["minilm", "static", "splade", "beir/scifact/test", "nDCG@10", "auto", "", "0", "1e400"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def _toml_key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


@st.composite
def recipe_documents(draw) -> str:
    """A TOML document: schema fields (and unknown ones) with values of any type, at top level or in tables."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=10)))
        lines.append(f"{'.'.join(_toml_key(p) for p in key.split('.'))} = {_toml_value(draw(values))}")
    if draw(st.booleans()):
        lines.insert(0, 'extends = "baselines/bm25-scifact"')
    return "\n".join(dict.fromkeys(lines)) + "\n"


def _loads_or_refuses(path: Path, overrides=()) -> None:
    try:
        load_recipe(path, list(overrides))
    except RecipeError as exc:
        for line in str(exc).splitlines():
            assert line.split(":")[0], line  # each problem names where it comes from
    # any other exception fails the test, with hypothesis' smallest example


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=recipe_documents())
def test_any_recipe_document_loads_or_is_refused_in_one_line_per_problem(tmp_path, doc):
    path = tmp_path / "fuzz.toml"
    path.write_text(doc, encoding="utf-8")
    _loads_or_refuses(path)


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_recipe_file_are_refused_cleanly(tmp_path, data):
    path = tmp_path / "bytes.toml"
    path.write_bytes(data)
    _loads_or_refuses(path)


@settings(max_examples=CASES, deadline=None)
@given(key=st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), raw=st.one_of(
    st.text(max_size=30), st.builds(_toml_value, values)))
def test_any_set_override_loads_or_is_refused(key, raw):
    _loads_or_refuses("baselines/bm25-scifact", [f"{key}={raw}"])


# ---- ranges and load errors, case by case -----------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("train.epochs=inf", "train.epochs: expected a finite number, got inf"),
    ("train.epochs=5000", "train.epochs: expected a positive number of at most 1000, got 5000"),
    ("train.lr=inf", "train.lr: expected a finite number, got inf"),
    ("train.lr=3.0", "train.lr: expected a positive number of at most 1, got 3.0"),
    ("eval.depth=99999999999", "eval.depth: expected an integer of at most 2,147,483,647 in size"),
    ("eval.depth=200000", "eval.depth: expected a positive integer of at most 100000, got 200000"),
    ("bm25.k1=inf", "bm25.k1: expected a finite number, got inf"),
    ("bm25.b=nan", "bm25.b: expected a finite number, got nan"),
    ("seed=18446744073709551616", "seed: expected an integer of at most 2,147,483,647 in size"),
    ("index.plaid.nbits=3", "index.plaid.nbits: expected one of 1, 2, 4, 8, got 3"),
    ("name=" + "x" * 300, "name: expected at most 100 letters, digits"),
])
def test_numeric_ranges_the_code_can_honour(override, message):
    with pytest.raises(RecipeError) as err:
        load_recipe("scifact/dense-static", [override])
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_load_errors_that_used_to_be_tracebacks(tmp_path):
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'description = "caf\xe9"\n')
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    child = tmp_path / "child.toml"
    child.write_text('extends = "latin.toml"\n')
    for path, words in ((latin, "not UTF-8 text"), (deep, "nested too deeply"), (child, "not UTF-8 text")):
        out = run_cli("validate", str(path))
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and words in out.stderr and "latin.toml" in out.stderr or \
            path == deep and "deep.toml" in out.stderr
    out = run_cli("validate", "baselines/bm25-scifact", "--set", "eval.depth=" + "[" * 5000)
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_a_missing_self_distillation_teacher_is_named_before_any_work(tmp_path, data_dir):
    recipe = tmp_path / "self.toml"
    recipe.write_text('extends = "scifact/dense-self.toml"\n[distill.self]\nteacher = "scifact/no-such-recipe"\n')
    runs = tmp_path / "runs"
    for args in (["validate", str(recipe), "--data"], ["run", str(recipe), "--runs-dir", str(runs)]):
        out = run_cli(*args)
        assert out.returncode == 2, out.stderr
        (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
        assert line.startswith(f"error: {recipe}: distill.self.teacher: scifact/no-such-recipe: recipe not found")
    assert not runs.exists() or not any(runs.rglob("*-*"))  # nothing built


def test_report_inputs_that_used_to_be_tracebacks(tmp_path):
    from _report_fakes import TOY, make_fake_runs

    root = make_fake_runs(tmp_path / "runs", datasets=[TOY])
    payload = json.loads((root / "bm25-toy" / "results.json").read_text())
    payload["recipe_file"] = 42
    (root / "bm25-toy" / "results.json").write_text(json.dumps(payload))
    out = run_cli("check", str(root / "bm25-toy"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "results.json: recipe_file: expected a string, got 42" in out.stderr
    (tmp_path / "afile").write_text("x")
    out = run_cli("check", str(root / "splade-toy"), "--junit", str(tmp_path / "afile" / "gate.xml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "--junit" in out.stderr
