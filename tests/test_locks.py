"""Concurrent builders of one stage: one builds, the others wait and reuse; a builder killed with SIGKILL
never blocks the next one; ``harness gc`` removes what dead processes left and keeps what live ones use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_cli

BUILDER = r"""
import logging, sys, time
from pathlib import Path
from harness.artifacts import Store
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
root, seconds, tag = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
stage = Store(root).stage("slow", {"what": "shared by every process"})
print("start", tag, flush=True)
with stage.ensure() as out:
    if out is not None:
        print("building", tag, flush=True)
        time.sleep(seconds)
        (out / "value.txt").write_text(tag)
print("result", tag, (stage.dir / "value.txt").read_text(), flush=True)
"""


def _spawn(root: Path, seconds: float, tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(root), str(seconds), tag], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 60) -> list[str]:
    lines, end = [], time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(word):
            return lines
    raise AssertionError(f"no line starting {word!r}: {lines}")


def test_three_processes_one_builds_the_others_wait_and_reuse(tmp_path):
    first = _spawn(tmp_path, 3.0, "A")
    _wait_for(first, "building")  # A holds the lock
    others = [_spawn(tmp_path, 0.0, t) for t in ("B", "C")]
    outputs = [first.communicate(timeout=120)[0]] + [p.communicate(timeout=120)[0] for p in others]
    assert all(p.returncode == 0 for p in [first, *others]), outputs
    for out in outputs[1:]:
        assert "is building it" in out and "built meanwhile by another process" in out and "\nbuilding " not in out
        assert "result" in out and out.strip().endswith("A")  # everybody reads A's stage
    stage_dirs = [p for p in tmp_path.glob("_shared/slow-*") if p.is_dir()]
    assert len(stage_dirs) == 1  # no temp directory left behind either


def test_a_builder_killed_with_sigkill_does_not_block_the_next(tmp_path):
    victim = _spawn(tmp_path, 600.0, "dead")
    _wait_for(victim, "building")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    t0 = time.time()
    nxt = _spawn(tmp_path, 0.0, "next")
    out = nxt.communicate(timeout=120)[0]
    assert nxt.returncode == 0, out
    assert time.time() - t0 < 60  # the dead holder's lock was released by the OS
    assert f"previous builder (pid {victim.pid}" in out and "died while building it" in out
    assert out.strip().endswith("next")
    # what the dead builder left: its temp directory, removed by gc, which says how much it freed
    leftovers = list(tmp_path.glob(f"_shared/slow-*.tmp-{victim.pid}-*"))
    assert len(leftovers) == 1
    gc = run_cli("gc", str(tmp_path))
    assert gc.returncode == 0, gc.stderr
    assert "removed" in gc.stdout and f"unfinished build of process {victim.pid}" in gc.stdout
    assert not leftovers[0].exists() and "gc: freed" in gc.stdout


def test_gc_removes_leftovers_and_keeps_what_is_in_use(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shared = tmp_path / "_shared"
    finished = shared / "answer-key-0123456789ab"
    finished.mkdir(parents=True)
    (finished / "manifest.json").write_text("{}")
    unfinished = shared / "student-dense-ba9876543210"
    run_dir = tmp_path / "my-run" / "seed-1"
    garbage = {
        shared / f"answer-key-0123456789ab.tmp-{dead.pid}-1": "x" * 1000,  # a dead builder's temp dir
        shared / "groups-aaaaaaaaaaaa.corrupt-1700000000": "y" * 500,
        shared / "answer-key-0123456789ab.partial": "z" * 300,  # its stage has finished
        run_dir / f"retrieve-toy-cccccccccccc.tmp-{dead.pid}-7": "w" * 200,  # inside a seed run directory
    }
    kept = {
        shared / f"bm25-index-dddddddddddd.tmp-{os.getpid()}-1": "alive",  # this process is alive
        unfinished.with_name(unfinished.name + ".partial"): "resume me",
    }
    for d, text in {**garbage, **kept}.items():
        d.mkdir(parents=True)
        (d / "data.bin").write_text(text)
    (tmp_path / "my-run" / f".results.json.tmp-{dead.pid}").write_text("{")
    dry = run_cli("gc", str(tmp_path), "--dry-run")
    assert dry.returncode == 0 and "would remove" in dry.stdout and all(d.exists() for d in garbage)
    out = run_cli("gc", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert not any(d.exists() for d in garbage) and all(d.exists() for d in kept)
    assert not (tmp_path / "my-run" / f".results.json.tmp-{dead.pid}").exists()
    assert (finished / "manifest.json").is_file()  # finished stages are never touched
    assert "gc: freed 2.00 kB" in out.stdout  # 1000 + 500 + 300 + 200 bytes + the 1-byte temp file
    assert "resumable state of an unfinished stage" in out.stdout
    missing = run_cli("gc", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such runs directory" in missing.stderr
