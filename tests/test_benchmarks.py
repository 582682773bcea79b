"""Each benchmark script runs on a tiny slice, writes its results file and prints ``ratio=`` last (the
figures themselves are measured by running the scripts at full size, not here: benchmarks are not timed tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "evaluation": (["--max-queries", "20", "--depth", "50", "--repeats", "1"], ["evaluation"]),
    "encoding": (["--docs", "16", "--max-len", "32", "--repeats", "1"],
                 ["encoding-dense", "encoding-splade", "encoding-colbert"]),
    "search": (["--docs", "100", "--queries", "5", "--k", "20", "--max-len", "32", "--repeats", "1"],
               ["search-splade", "search-dense"]),
    "training_step": (["--steps", "1", "--batch", "2", "--doc-len", "32"],
                      ["training-step-dense", "training-step-splade", "training-step-colbert"]),
    "teacher_scoring": (["--pairs", "16", "--batch-size", "8", "--max-len", "32", "--repeats", "1"],
                        ["teacher-scoring"]),
    "scaling": (["--sizes", "40,80", "--max-len", "32", "--queries", "3"], ["scaling"]),
    "unit_costs": (["--backbone", "tiny", "--steps", "1", "--batch", "2", "--docs", "10", "--repeat", "2",
                    "--pairs", "16"], ["unit-costs-cpu"]),
    "rerun": (["--recipe", "baselines/bm25-scifact", "--set", "eval.max_queries=10"], ["rerun"]),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_a_benchmark_runs_on_a_tiny_slice_and_prints_a_ratio(script, tmp_path, data_dir):
    args, names = CASES[script]
    env = {**os.environ, "HARNESS_BENCH_RESULTS": str(tmp_path), "HARNESS_PROGRESS": "0"}
    out = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *args], capture_output=True, text=True,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("ratio=")
    float(out.stdout.strip().splitlines()[-1].split("=", 1)[1])
    for name in names:
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert {"ratio", "floor", "higher_is_better", "figures", "machine"} <= set(data)
        assert data["ratio"] > 0 and data["machine"]["cores"]
