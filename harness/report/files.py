"""Atomic file output for reports: a reader never sees a half-written table, page or plot.

Every file is written to a temporary sibling whose name is unique to the writing process *and* thread,
flushed to disk, then renamed over the target (``os.replace`` is atomic on one filesystem). Several
processes building the same leaderboard at once therefore each publish complete files: the last rename
wins and nothing is ever interleaved.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Callable


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write(tmp_path)`` produce the file (e.g. matplotlib's savefig), then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
