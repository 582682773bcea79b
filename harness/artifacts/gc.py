"""``harness gc RUNS``: remove what killed or failed runs left behind in a runs directory.

What goes (and why it is safe):

* ``<stage>.tmp-<pid>-<n>/`` — a stage being built into by process ``pid``; removed when that process is
  gone (a live one is still building: kept);
* ``<stage>.old-<pid>/`` — a replaced stage a dead process did not finish deleting;
* ``<stage>.corrupt-<time>/`` — a stage that failed its checksums and was recomputed (kept until now for
  inspection);
* ``<stage>.partial/`` — resumable state (answer-key chunks, checkpoints) of a stage that is now finished;
  the partial state of an unfinished stage is kept, so a later run resumes from it;
* ``.<file>.tmp-<pid>`` — a file being written atomically by a dead process;
* ``.locks/<stage>.lock.json`` — the holder note of a dead builder.

Lock files themselves (``.locks/<stage>.lock``, empty) stay: deleting one could let two builders hold it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.artifacts.locks import pid_alive

TMP_DIR = re.compile(r"^(?P<stage>.+)\.tmp-(?P<pid>\d+)-\d+$")
OLD_DIR = re.compile(r"^(?P<stage>.+)\.old-(?P<pid>\d+)$")
CORRUPT_DIR = re.compile(r"^(?P<stage>.+)\.corrupt-\d+$")
PARTIAL_DIR = re.compile(r"^(?P<stage>.+)\.partial$")
TMP_FILE = re.compile(r"^\..+\.tmp-(?P<pid>\d+)$")
HOLDER = re.compile(r"^(?P<stage>.+)\.lock\.json$")
STAGE_DIR = re.compile(r"^.+-[0-9a-f]{12}$")


@dataclass
class Garbage:
    removed: list[tuple[Path, int, str]] = field(default_factory=list)  # (path, bytes, why)
    kept: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(b for _, b, _ in self.removed)


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _finished(stage_dir: Path) -> bool:
    return (stage_dir / "manifest.json").is_file()


def _verdict(p: Path) -> "tuple[bool, str]":
    """(remove?, why) for one entry of a runs tree; (False, "") for everything that is not garbage."""
    name = p.name
    if p.is_dir():
        if m := TMP_DIR.match(name):
            pid = int(m["pid"])
            return (False, f"process {pid} is still building it") if pid_alive(pid) else \
                (True, f"unfinished build of process {pid}, which is gone")
        if m := OLD_DIR.match(name):
            pid = int(m["pid"])
            return (not pid_alive(pid), f"replaced stage left by process {pid}")
        if CORRUPT_DIR.match(name):
            return True, "a corrupted stage, moved aside when it was recomputed"
        if m := PARTIAL_DIR.match(name):
            stage = p.with_name(m["stage"])
            return (True, "resumable state of a stage that has since finished") if _finished(stage) else \
                (False, "resumable state of an unfinished stage (a later run resumes from it)")
        return False, ""
    if m := TMP_FILE.match(name):
        pid = int(m["pid"])
        return (not pid_alive(pid), f"a file process {pid} was writing")
    if m := HOLDER.match(name):
        try:
            import json

            pid = int(json.loads(p.read_text()).get("pid", 0))
        except (OSError, ValueError):
            pid = 0
        return (not pid_alive(pid) if pid else True, "the lock note of a builder that is gone")
    return False, ""


def collect(root: Path, dry_run: bool = False) -> Garbage:
    """Find (and unless ``dry_run`` remove) the leftovers under ``root``."""
    out = Garbage()
    stack = [Path(root)]
    while stack:
        d = stack.pop()
        for p in sorted(d.iterdir()):
            remove, why = _verdict(p)
            if remove:
                size = _size(p)
                if not dry_run:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
                out.removed.append((p, size, why))
            elif why:
                out.kept.append((p, why))
            elif p.is_dir() and not STAGE_DIR.match(p.name):  # scopes, run and seed directories; not stages
                stack.append(p)
    return out
