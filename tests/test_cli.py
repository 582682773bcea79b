"""The CLI contract: fast --help, clear errors, exit codes, Java failures explained."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

HEAVY = ["torch", "transformers", "pandas", "ir_measures", "ir_datasets", "jnius", "pyserini", "numpy"]


def test_help_imports_nothing_heavy():
    """`harness --help` answers at once because no heavy library is imported for it."""
    code = ("import sys\nfrom harness.cli import build_parser\nbuild_parser().format_help()\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_and_version():
    out = run_cli("--help")
    assert out.returncode == 0 and "run" in out.stdout and "validate" in out.stdout
    assert run_cli("--version").stdout.startswith("distill-harness ")


def test_recipes_lists_shipped():
    out = run_cli("recipes")
    listed = out.stdout.split()
    assert "baselines/bm25-scifact" in listed and "quickstart/dense-multitask" in listed
    assert not any(name.startswith("scifact/_") for name in listed)  # bases are not recipes to run


def test_missing_dataset_fails_before_compute(tmp_path):
    out = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(tmp_path), "--json",
                  "--set", 'eval.datasets=["scifact", "nosuchset"]')
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    # the file (here the --set that gave the value), the field, the dataset, and where to put its files
    assert last.startswith("error: ") and last.endswith("$HARNESS_DATA_DIR/nosuchset/."), last
    assert ('recipes/baselines/bm25-scifact.toml (--set eval.datasets=["scifact", "nosuchset"]): '
            'eval.datasets: nosuchset: unknown dataset') in last
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "_shared").exists()  # nothing was built before the check


def test_bad_model_in_a_base_file_names_that_file(tmp_path, data_dir):
    """A student recipe extending a base whose student.model is wrong: the error names the base file."""
    base = tmp_path / "base.toml"
    base.write_text('extends = "scifact/splade-static"\n[student]\nmodel = "not a model"\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\nname = "child"\n')
    out = run_cli("run", "child.toml", "--runs-dir", "runs", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: base.toml: student.model: "not a model" is neither a local folder'), last
    assert not (tmp_path / "runs" / "_shared").exists()


def test_unknown_recipe_exit_2(tmp_path):
    out = run_cli("run", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "recipe not found" in out.stderr


def test_java_that_cannot_start_is_explained(tmp_path, data_dir):
    out = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(tmp_path), "--set", "eval.max_queries=5",
                  env={"HARNESS_JAVA_HOME": str(tmp_path / "no-java")})
    assert out.returncode == 1
    assert "error: no java executable at" in out.stderr and "Traceback" not in out.stderr


def test_java_too_old_is_explained(tmp_path, data_dir):
    java = shutil.which("java")
    if java is None:
        pytest.skip("no system java to try")
    home = Path(java).resolve().parent.parent
    probe = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True)
    if 'version "21' in probe.stderr or 'version "2' in probe.stderr:
        pytest.skip("the system java is new enough")
    out = run_cli("run", "baselines/bm25-scifact", "--runs-dir", str(tmp_path), "--set", "eval.max_queries=5",
                  env={"HARNESS_JAVA_HOME": str(home)})
    assert out.returncode == 1
    assert "Pyserini 1.6 needs Java >= 21" in out.stderr and "Traceback" not in out.stderr
