"""Recipes: TOML + extends + --set, validated before any compute; one line per problem naming file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import run_cli
from harness.errors import RecipeError
from harness.recipe import builtin_recipes, load_recipe
from harness.recipe.loader import parse_override


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, list(overrides))
    lines = info.value.problems
    assert all("\n" not in line for line in lines)
    return lines


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_shipped_recipe_validates(name):
    loaded = load_recipe(name)
    assert loaded.recipe.eval.datasets


def test_defaults_name_and_hash(tmp_path):
    p = write(tmp_path, "mine.toml", 'method = "bm25"\n')
    loaded = load_recipe(p)
    assert loaded.name == "mine"
    assert loaded.recipe.bm25.k1 == 0.9 and loaded.recipe.eval.measures == ["nDCG@10", "RR@10", "R@100"]
    # the description does not change results, so it does not change the hash
    assert load_recipe(p, ['description="other words"']).hash == loaded.hash
    assert load_recipe(p, ["bm25.k1=1.2"]).hash != loaded.hash


@pytest.mark.parametrize("body, override, expected", [
    ("[eval]\ndepth = \"abc\"\n", None, 'eval.depth: expected a positive integer of at most 100000, got "abc"'),
    ("[eval]\ndepth = 0\n", None, "eval.depth: expected a positive integer of at most 100000, got 0"),
    ("[eval]\ndepth = 2.5\n", None, "eval.depth: expected a positive integer of at most 100000, got 2.5"),
    ("[eval]\ndepth = true\n", None, "eval.depth: expected a positive integer of at most 100000, got true"),
    ("[bm25]\nb = 1.5\n", None, "bm25.b: expected a number between 0 and 1, got 1.5"),
    ("[bm25]\nk1 = \"high\"\n", None, 'bm25.k1: expected a positive number of at most 100, got "high"'),
    ("seed = -1\n", None, "seed: expected a non-negative integer, got -1"),
    ("[eval]\nmax_queries = \"all\"\n", None, 'eval.max_queries: expected a non-negative integer, got "all"'),
    ("method = \"bm52\"\n", None, 'method: expected one of "bm25", "rerank", "student", got "bm52"; did you mean "bm25"?'),
    ("[eval]\ndatasets = \"beir/scifact/test\"\n", None, "eval.datasets: expected a list of strings"),
    ("[eval]\ndatasets = []\n", None, "eval.datasets: expected a non-empty list of dataset ids, got []"),
    ("[eval]\ndatasets = [1, 2]\n", None, "eval.datasets[0]: expected a string, got 1"),
    ("[eval]\nmeasures = [\"nDCG@10\", \"NDGC@10\"]\n", None, 'eval.measures: expected ir_measures measure'),
    ("[data]\ndoc_fields = [\"body\"]\n", None, 'data.doc_fields: expected fields from "title", "text", got "body"'),
    ("eval = 3\n", None, "eval: expected a table, got 3"),
    ("[eval]\ndepht = 10\n", None, 'eval.depht: unknown key; did you mean "depth"?'),
    ("[evaluation]\ndepth = 10\n", None, 'evaluation: unknown key; did you mean "eval"?'),
    ("zzz = 1\n", None, "zzz: unknown key; known keys:"),
    ("", "eval.depth=abc", 'eval.depth: expected a positive integer of at most 100000, got "abc"'),
    ("", "eval.dpth=5", 'eval.dpth: unknown key; did you mean "depth"?'),
])
def test_malformed_recipes_name_file_and_field(tmp_path, body, override, expected):
    p = write(tmp_path, "bad.toml", body)
    lines = problems(p, [override] if override else [])
    assert len(lines) == 1, lines
    source, _, rest = lines[0].partition(": ")
    if override:
        assert source.endswith(f"bad.toml (--set {override})")
    else:
        assert source.endswith("bad.toml")
    assert rest.startswith(expected), lines[0]


def test_every_problem_is_reported(tmp_path):
    p = write(tmp_path, "bad.toml", '[eval]\ndepth = -3\nmax_docs = "x"\n[bm25]\nk2 = 1\n')
    lines = problems(p)
    assert len(lines) == 3
    assert {line.split(": ")[1] for line in lines} == {"eval.depth", "eval.max_docs", "bm25.k2"}


def test_invalid_toml(tmp_path):
    p = write(tmp_path, "broken.toml", "[eval\ndepth = 3\n")
    (line,) = problems(p)
    assert "broken.toml: not valid TOML" in line


def test_extends_merges_tables_and_names_the_file_with_the_problem(tmp_path):
    write(tmp_path, "base/base.toml", '[eval]\ndatasets = ["cisi"]\ndepth = "deep"\n[bm25]\nk1 = 1.2\n')
    child = write(tmp_path, "child.toml", 'extends = "base/base.toml"\n[bm25]\nb = 0.7\n')
    (line,) = problems(child)
    assert line.split(": ")[0].endswith("base/base.toml")  # the base file holds the bad value
    assert 'eval.depth: expected a positive integer of at most 100000, got "deep"' in line
    fixed = load_recipe(child, ["eval.depth=10"])
    assert fixed.recipe.bm25.k1 == 1.2 and fixed.recipe.bm25.b == 0.7  # merged key by key
    assert fixed.recipe.eval.datasets == ["cisi"]
    assert fixed.name == "child"  # a base's name is not inherited
    assert [p.name for p in fixed.files] == ["child.toml", "base.toml"]


def test_extends_list_later_base_wins(tmp_path):
    write(tmp_path, "a.toml", "[bm25]\nk1 = 1.0\nb = 0.1\n")
    write(tmp_path, "b.toml", "[bm25]\nk1 = 2.0\n")
    c = write(tmp_path, "c.toml", 'extends = ["a.toml", "b.toml"]\n')
    r = load_recipe(c).recipe
    assert (r.bm25.k1, r.bm25.b) == (2.0, 0.1)


def test_extends_a_shipped_recipe_by_name(tmp_path):
    c = write(tmp_path, "mine.toml", 'extends = "baselines/bm25-scifact.toml"\n[bm25]\nk1 = 1.2\n')
    r = load_recipe(c).recipe
    assert r.eval.datasets == ["beir/scifact/test"] and r.bm25.k1 == 1.2


def test_missing_extends_file(tmp_path):
    c = write(tmp_path, "child.toml", 'extends = "nope.toml"\n')
    (line,) = problems(c)
    assert "child.toml: extends: file not found:" in line and line.endswith("nope.toml")


def test_extends_wrong_type(tmp_path):
    c = write(tmp_path, "child.toml", "extends = 3\n")
    (line,) = problems(c)
    assert "child.toml: extends: expected a file name or a list of file names" in line


@pytest.mark.parametrize("files", [
    {"a.toml": 'extends = "a.toml"\n'},
    {"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'},
    {"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "c.toml"\n', "c.toml": 'extends = "b.toml"\n'},
])
def test_extends_cycles(tmp_path, files):
    for name, text in files.items():
        write(tmp_path, name, text)
    (line,) = problems(tmp_path / "a.toml")
    assert "extends: cycle:" in line


def test_set_overrides(tmp_path):
    p = write(tmp_path, "r.toml", "")
    r = load_recipe(p, ["eval.depth=100", 'eval.datasets=["cisi", "medline"]', "bm25.k1=1.5",
                        "name=renamed", "description=plain words"]).recipe
    assert r.eval.depth == 100 and r.eval.datasets == ["cisi", "medline"] and r.bm25.k1 == 1.5
    assert r.name == "renamed" and r.description == "plain words"


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", "bad key=1"])
def test_bad_set_syntax(text):
    with pytest.raises(RecipeError) as info:
        parse_override(text)
    assert f"--set {text}: expected dotted.key=value" in str(info.value)


def test_set_into_a_scalar(tmp_path):
    p = write(tmp_path, "r.toml", "")
    (line,) = problems(p, ["seed.x=1"])
    assert "(--set seed.x=1): seed: expected a non-negative integer, got a table" in line


def test_bad_name(tmp_path):
    p = write(tmp_path, "r.toml", 'name = "../escape"\n')
    (line,) = problems(p)
    assert "name: expected at most 100 letters" in line


def test_unknown_recipe():
    with pytest.raises(RecipeError) as info:
        load_recipe("no/such/recipe")
    assert "no/such/recipe: recipe not found" in str(info.value) and "baselines/bm25-scifact" in str(info.value)


def test_cli_validate_exit_codes(tmp_path):
    good = run_cli("validate", "baselines/bm25-scifact")
    assert good.returncode == 0, good.stderr
    assert "ok" in good.stdout
    bad = write(tmp_path, "bad.toml", '[eval]\ndepth = "abc"\n')
    out = run_cli("validate", "bad.toml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ['error: bad.toml: eval.depth: expected a positive integer of at most 100000, got "abc"']
    assert "Traceback" not in out.stderr
    out = run_cli("run", str(bad), "--json")
    assert out.returncode == 2 and out.stdout == ""


def test_set_below_a_scalar_in_the_file(tmp_path):
    p = write(tmp_path, "r.toml", "seed = 3\n")
    (line,) = problems(p, ["seed.x=1"])
    assert "(--set seed.x=1): seed: is not a table, cannot set seed.x" in line
