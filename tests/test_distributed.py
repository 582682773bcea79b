"""One recipe across processes under torchrun (gloo on the CPU, 2 processes): training, the answer key and
the corpus encoding follow one process; a dead rank fails the run loudly and a re-run resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
# a dense static student on 40 training queries: 20 steps of 8 queries (4 epochs capped at 20), no dropout (a
# step is then a function of its batch alone), fp32; answer-key chunks of ~10 groups so the ranks share them
SLICE = ["scifact/dense-static", "--set", "train.max_queries=40", "--set", "train.epochs=4.0",
         "--set", "train.max_steps=20", "--set", "train.batch_queries=8", "--set", "train.dropout=0",
         "--set", "train.checkpoint_every=5", "--set", "eval.max_queries=20", "--set", "eval.max_docs=300",
         "--set", "eval.dev=false", "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "student.doc_max_len=64",
         "--set", "student.eval_doc_max_len=64", "--set", "teacher.check=false"]
ENV = {"HARNESS_ANSWER_KEY_CHUNK": "40", "HARNESS_PRECISION": "fp32", "HARNESS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
TOLERANCE = 1e-4  # per-step loss, 2 processes × 4 queries against 1 process × 8 (measured: equal to 5 decimals)


def _losses(runs: Path) -> list[float]:
    (log,) = runs.glob("_shared/student-dense-*/train_log.jsonl")
    return [json.loads(line)["loss"] for line in log.read_text().splitlines()]


def _stage_file(runs: Path, pattern: str) -> bytes:
    (path,) = runs.glob(f"_shared/{pattern}")
    return path.read_bytes()


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    runs = tmp_path_factory.mktemp("one-process")
    out = run_cli("run", *SLICE, "--runs-dir", str(runs), "--json", env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return runs, last_json_line(out.stdout)


@pytest.mark.slow  # ~2.5 min on 2 cores
def test_two_processes_train_score_and_encode_like_one(one, tmp_path):
    runs1, single = one
    runs2 = tmp_path / "two"
    out = run_cli("run", *SLICE, "--runs-dir", str(runs2), "--json", "--nproc", "2", env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    double = last_json_line(out.stdout)
    assert double["training"]["ranks"] == 2 and double["training"]["steps"] == 20
    assert "[rank 1] distributed: rank 1 of 2" in out.stderr
    a, b = _losses(runs1), _losses(runs2)
    assert len(a) == len(b) == 20
    assert max(abs(x - y) for x, y in zip(a, b)) <= TOLERANCE, list(zip(a, b))
    # the answer key: its chunks scored by two ranks, joined by rank 0 — the same file as one process's
    assert _stage_file(runs1, "answer-key-*/answer_key.parquet") == _stage_file(runs2, "answer-key-*/answer_key.parquet")
    # the trained students agree to float rounding (gradients summed in another order), so do their vectors
    import numpy as np

    v1, v2 = (np.load(next(r.glob("_shared/dense-index-*/index/vectors.npy"))) for r in (runs1, runs2))
    assert np.abs(v1 - v2).max() < 1e-4
    assert double["results"] == single["results"]


def test_two_processes_encode_the_corpus_exactly_as_one(tmp_path):
    """The same weights (the untrained student): two ranks, each encoding every other length-sorted batch,
    give the vectors of one process bit for bit."""
    untrained = ["scifact/dense-untrained", *SLICE[1:]]
    for n, name in ((1, "one"), (2, "two")):
        out = run_cli("run", *untrained, "--runs-dir", str(tmp_path / name), "--nproc", str(n), env=ENV)
        assert out.returncode == 0, out.stderr[-3000:]
    assert _stage_file(tmp_path / "one", "dense-index-*/index/vectors.npy") == \
        _stage_file(tmp_path / "two", "dense-index-*/index/vectors.npy")


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_and_a_rerun_with_another_n_resumes(one, tmp_path):
    runs1, single = one
    runs = tmp_path / "killed"
    env = {**os.environ, **ENV, "HARNESS_LOG_EVERY": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *SLICE, "--runs-dir", str(runs), "--nproc", "2"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log, pid, end = [], None, time.time() + 900
    for line in proc.stderr:  # kill rank 1 once training is past its first checkpoint (step 5)
        log.append(line)
        m = re.search(r"\[rank 1\] distributed: rank 1 of 2 \(pid (\d+)", line)
        if m:
            pid = int(m.group(1))
        m = re.search(r"\[rank 1\] progress train dense: (\d+)/", line)
        if m and int(m.group(1)) >= 7 and pid:
            os.kill(pid, signal.SIGKILL)
            break
        assert time.time() < end
    log.extend(proc.stderr)
    proc.wait(timeout=300)
    text = "".join(log)
    assert proc.returncode != 0, text[-3000:]
    assert "lost contact with the other ranks" in text or "exitcode" in text, text[-3000:]
    out = run_cli("run", *SLICE, "--runs-dir", str(runs), "--json", env=ENV)  # one process this time
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"train: resuming from step (5|10|15) of 20", out.stderr), out.stderr[-3000:]
    resumed = last_json_line(out.stdout)
    assert max(abs(x - y) for x, y in zip(_losses(runs1), _losses(runs))) <= TOLERANCE
    assert resumed["results"] == single["results"]
