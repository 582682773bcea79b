"""A resumed run equals an uninterrupted one, bit for bit (same machine): a student recipe on a SciFact slice
is killed with SIGKILL inside each resumable stage — the teacher's passage encoding, the answer-key scoring,
the training (after a checkpoint), the index — resumed each time, and every file of every stage it leaves
is compared, by checksum, with an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e

SLICE = ["--set", "train.max_queries=24", "--set", "train.epochs=1.0", "--set", "train.checkpoint_every=1",
         "--set", "negatives.depth=10", "--set", "eval.max_queries=30", "--set", "eval.max_docs=300",
         "--set", "eval.dev=false", "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "teacher.check=false"]
# small resumable parts: answer-key chunks of ~10 groups, teacher passage parts of one batch
ENV = {"HARNESS_ANSWER_KEY_CHUNK": "40", "HARNESS_PLAN_CHUNK": "1", "HARNESS_PROGRESS": "0"}


def _start(runs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", "scifact/dense-static", "--runs-dir", str(runs),
                             *SLICE], cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _kill_when(runs: Path, pattern: str, timeout: float = 600) -> str:
    """Run until a file matching ``pattern`` (a glob under runs/_shared) exists, then SIGKILL; the log."""
    proc = _start(runs)
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if any((runs / "_shared").glob(pattern)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before {pattern} appeared: {proc.stderr.read()[-2000:]}"
    return proc.stderr.read()


def _stage_files(runs: Path) -> dict[str, dict[str, str]]:
    """{stage dir name: {file: blake2b}} of every finished shared stage."""
    out = {}
    for manifest in sorted((runs / "_shared").glob("*/manifest.json")):
        files = json.loads(manifest.read_text())["files"]
        out[manifest.parent.name] = {rel: meta["blake2b"] for rel, meta in files.items()}
    return out


def test_kill_at_each_stage_then_resume_gives_the_uninterrupted_artifacts(tmp_path, data_dir):
    whole = tmp_path / "uninterrupted"
    done = subprocess.run([sys.executable, "-m", "harness", "run", "scifact/dense-static", "--runs-dir", str(whole),
                           *SLICE], cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]

    cut = tmp_path / "interrupted"
    logs = [
        _kill_when(cut, "answer-key-*.partial/**/passages-00001.npy"),  # the teacher's passage plan
        _kill_when(cut, "answer-key-*.partial/chunk-00001.parquet"),  # answer-key scoring
        _kill_when(cut, "student-dense-*.partial/checkpoint.pt"),  # training, after a checkpoint
        _kill_when(cut, "dense-index-*.tmp-*/*"),  # the index being written
    ]
    assert "answer key: resuming" in logs[1] + logs[2] or "reuse  answer-key" in logs[2]
    assert "train: resuming from step" in logs[3]
    last = subprocess.run([sys.executable, "-m", "harness", "run", "scifact/dense-static", "--runs-dir", str(cut),
                           *SLICE], cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=1200)
    assert last.returncode == 0, last.stderr[-3000:]

    a, b = _stage_files(whole), _stage_files(cut)
    assert sorted(a) == sorted(b)  # the same stages, under the same hashes
    # Lucene writes a random id and a timestamp into every segment, so two builds of one BM25 index never
    # match byte for byte, killed or not: it is compared by what it gives (the BM25 run stage, bit for bit)
    lucene = [s for s in a if s.startswith("bm25-index-")]
    table = []
    for stage in sorted(a):
        same = a[stage] == b[stage] if stage not in lucene else sorted(a[stage]) == sorted(b[stage])
        table.append(f"{stage:<40} {len(a[stage]):>3} files  {'identical' if same else 'DIFFERENT'}"
                     + (" (file names; Lucene ids differ by design)" if stage in lucene else ""))
    print("\n".join(table))
    assert all(a[s] == b[s] for s in a if s not in lucene), "\n".join(table)
    assert all(sorted(a[s]) == sorted(b[s]) for s in lucene)
    assert any(s.startswith("bm25-run-") for s in a) and any(s.startswith("answer-key-") for s in a)
    ra = json.loads((whole / "scifact-dense-static" / "results.json").read_text())["results"]
    rb = json.loads((cut / "scifact-dense-static" / "results.json").read_text())["results"]
    assert ra == rb
