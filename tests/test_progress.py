"""Logs a person can follow off a terminal: a progress line every HARNESS_LOG_EVERY seconds when no bar shows."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from harness.encoding import Heartbeat, progress


def test_a_loop_nobody_watches_logs_progress_rate_eta_and_loss(monkeypatch, caplog):
    monkeypatch.setenv("HARNESS_PROGRESS", "0")
    monkeypatch.setenv("HARNESS_LOG_EVERY", "0.05")
    caplog.set_level(logging.INFO, logger="harness")
    with progress(20, "train dense", unit="step") as bar:
        assert isinstance(bar, Heartbeat)
        for step in range(20):
            time.sleep(0.01)
            bar.set_postfix(loss=f"{1.0 / (step + 1):.3f}")
            bar.update(1)
        with progress(5, "inner") as inner:  # a nested loop does not report: the outer one does
            assert not isinstance(inner, Heartbeat)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert 1 <= len(lines) <= 8, lines
    first = lines[0]
    assert first.startswith("progress train dense: ") and " step (" in first and "step/s" in first
    assert "ETA " in first and "loss " in first


def test_no_lines_when_a_bar_shows_or_when_turned_off(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="harness")
    monkeypatch.setenv("HARNESS_PROGRESS", "1")  # a bar on the terminal says it all
    monkeypatch.setenv("HARNESS_LOG_EVERY", "0.01")
    with progress(3, "x") as bar:
        assert not isinstance(bar, Heartbeat)
    monkeypatch.setenv("HARNESS_PROGRESS", "0")
    monkeypatch.setenv("HARNESS_LOG_EVERY", "0")
    with progress(3, "x") as bar:
        assert not isinstance(bar, Heartbeat)


def test_a_resumed_loop_reports_the_rate_of_this_run_and_the_eta_left():
    class Bar:
        def update(self, n):
            pass

    hb = Heartbeat(Bar(), total=100, desc="train", unit="step", every=0)
    hb.update(50)  # resumed at step 50 (the trainer's bar.update(start))
    hb.t0 -= 10.0  # 10 s since
    hb.update(10)
    line = hb.line()
    assert line.startswith("progress train: 60/100 step (60%)")
    assert "1 step/s" in line and "ETA 0m40s" in line


def test_each_rank_lines_carry_its_rank(tmp_path):
    """Under torchrun (WORLD_SIZE > 1) every log line of the CLI names the process's rank."""
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "HARNESS_PROGRESS": "0"}
    out = subprocess.run([sys.executable, "-m", "harness", "validate", "scifact/dense-static", "--data"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stamped = [x for x in out.stderr.splitlines() if x[:2].isdigit()]  # "16:41:06 [rank 1] data ..."
    assert stamped and all(x[8:].startswith(" [rank 1] ") for x in stamped), out.stderr
