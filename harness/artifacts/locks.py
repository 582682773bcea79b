"""One builder per stage: a lock file beside each stage directory while it is being built.

    <scope>/.locks/<name>-<hash>.lock        held (flock, through ``filelock``) by the process building the stage
    <scope>/.locks/<name>-<hash>.lock.json   who holds it: pid, host, since (written after taking the lock)

Two processes that need the same unfinished stage (two runs into one runs directory, a suite and a run)
do not both build it: the first takes the lock and builds; the others say who they wait for, wait, then
find the finished stage and reuse it. The operating system releases a flock when its holder dies (even on
SIGKILL), so a dead holder never blocks anyone: the next process takes the lock, says that the previous
builder died, and resumes from the ``.partial`` state it left (answer-key chunks, training checkpoints),
which only the lock holder ever reads or writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("harness")

LOCKS = ".locks"  # beside the stages of a scope; hidden, so listings of run directories skip it


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _holder(path: Path) -> "dict | None":
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _describe(h: "dict | None") -> str:
    if not h:
        return "another process"
    return f"pid {h.get('pid')} on {h.get('host')} (since {h.get('since')})"


@contextlib.contextmanager
def stage_lock(stage_dir: Path, what: str) -> Iterator[None]:
    """Hold the build lock of ``stage_dir``; ``what`` names the stage in messages."""
    from filelock import FileLock, Timeout

    lock_path = stage_dir.parent / LOCKS / (stage_dir.name + ".lock")
    holder_path = stage_dir.parent / LOCKS / (stage_dir.name + ".lock.json")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("wait   %s: %s is building it", what, _describe(_holder(holder_path)))
        t0 = time.perf_counter()
        lock.acquire()
        log.info("wait   %s: waited %.0f s", what, time.perf_counter() - t0)
    try:
        previous = _holder(holder_path)  # still there: its writer died holding the lock
        if previous and previous.get("host") == socket.gethostname() and not pid_alive(int(previous.get("pid", 0))):
            log.warning("stage %s: its previous builder (%s) died while building it; resuming from what it "
                        "left", what, _describe(previous))
        holder_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                           "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_path.unlink()
        lock.release()  # the empty lock file stays: unlinking it would let a waiter and a newcomer both hold it
