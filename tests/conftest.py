"""Shared fixtures. Tests use real data from $HARNESS_DATA_DIR (default: ../shared/data beside the repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"].split(os.pathsep)[0])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"test data not found: set HARNESS_DATA_DIR to the folder holding scifact/, cranfield/, ... "
                    f"(looked in {DATA_DIR})")
    return DATA_DIR


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 1800):
    """Run ``python -m harness ARGS`` in a subprocess, as a user or CI job would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def last_json_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])
