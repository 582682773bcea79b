"""Content-addressed stage directories: reuse what is finished, never use what is half-written.

    store = Store(Path("runs"))
    stage = store.stage("bm25-index", key={...}, scope=SHARED)
    with stage.ensure() as out:        # out is None when a verified copy exists
        if out is not None:
            build_index(out)            # write into a temporary directory
    stage.dir / "index"                 # the finished artifact

A stage is ``<root>/<scope>/<name>-<hash>/``, where the hash covers everything that determines its
content (the key: upstream hashes, parameters, code version). It is built in a temporary sibling
directory, a ``manifest.json`` with a checksum of every file is written last, and the directory is
renamed into place: a killed run leaves only a ``*.tmp-*`` directory that is never read. On reuse,
every file is checked against the manifest; a corrupted stage is moved aside (``*.corrupt-<time>``,
kept for inspection) and recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from harness import __version__
from harness.artifacts.locks import stage_lock
from harness.errors import ArtifactError
from harness.recipe.loader import config_hash

log = logging.getLogger("harness")

SHARED = "_shared"  # stages any recipe may reuse: indexes, answer keys, trained teachers
STAGE_FORMAT = 1  # bump when the on-disk layout of stages changes


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _checksums(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            out[str(p.relative_to(root))] = {"size": p.stat().st_size, "blake2b": file_digest(p)}
    return out


def cold_cache_seconds(payloads: "Iterable[dict[str, Any]]") -> float:
    """What a set of runs costs from an empty cache: each stage's build time once, however many runs share
    it (``stage_seconds`` of every ``results.json``); a run written before stages were timed counts its
    own ``seconds``."""
    payloads = list(payloads)
    loose = sum(float(p["seconds"]) for p in payloads
                if not isinstance(p.get("stage_seconds"), dict) and isinstance(p.get("seconds"), (int, float)))
    return sum(_stage_seconds(payloads).values()) + loose


def _stage_seconds(payloads: "Iterable[dict[str, Any]]") -> dict[str, float]:
    """{stage: build seconds} over the runs' ``stage_seconds``, each stage once however many runs share it."""
    stages: dict[str, float] = {}
    for p in payloads:
        st = p.get("stage_seconds")
        if isinstance(st, dict):
            stages.update({k: float(v) for k, v in st.items() if isinstance(v, (int, float))})
    return stages


def stage_kind(stage: str) -> str:
    """``_shared/student-dense-85de280a42b5`` -> ``student-dense``; the per-dataset retrieve and evaluate stages
    (``run/eval-beir-scifact-test-6ccb2894f7bd``) -> ``retrieve`` / ``evaluate``."""
    name = stage.rsplit("/", 1)[-1]
    head, _, tail = name.rpartition("-")
    if head and len(tail) == 12 and all(c in "0123456789abcdef" for c in tail):
        name = head
    if name.startswith("retrieve-"):
        return "retrieve"
    if name.startswith("eval-"):
        return "evaluate"
    return name


def time_by_stage_kind(payloads: "Iterable[dict[str, Any]]") -> "list[tuple[str, float, int]]":
    """Where a set of runs spends its time: (stage kind, build seconds, how many stages) with each stage counted
    once however many runs share it, largest first — the parts of :func:`cold_cache_seconds`."""
    kinds: dict[str, list[float]] = {}
    for k, v in _stage_seconds(payloads).items():
        kinds.setdefault(stage_kind(k), []).append(v)
    return sorted(((k, round(sum(v), 1), len(v)) for k, v in kinds.items()), key=lambda r: (-r[1], r[0]))


def format_time_by_stage_kind(rows: "list[tuple[str, float, int]]", top: int = 10) -> str:
    """One line: ``student-dense 256 s, dense-index 131 s (×5), … (each stage once)``."""
    parts = [f"{k} {s:.0f} s" + (f" (×{n})" if n > 1 else "") for k, s, n in rows[:top]]
    rest = sum(s for _, s, _ in rows[top:])
    if rest:
        parts.append(f"other {rest:.0f} s")
    return ", ".join(parts)


@dataclass
class StageRecord:
    """What a run did with a stage, for the run manifest."""

    name: str
    hash: str
    dir: str
    reused: bool
    seconds: float  # spent in this run: the build, or only the check when reused
    info: dict[str, Any] = field(default_factory=dict)
    built_seconds: float = 0.0  # what building it took, whenever that was (its own manifest's ``seconds``)


class Stage:
    def __init__(self, store: "Store", name: str, key: dict[str, Any], scope: str):
        self.store, self.name, self.key, self.scope = store, name, key, scope
        # the harness version is part of every key: an upgrade never reuses what older code computed
        self.hash = config_hash({"stage": name, "format": STAGE_FORMAT, "harness": __version__, **key})
        self.dir = store.root / scope / f"{name}-{self.hash[:12]}"
        self.info: dict[str, Any] = {}  # figures the builder wants in the manifest (timings, sizes)

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def verify(self) -> "str | None":
        """None when the stage is complete and intact, else what is wrong."""
        if not self.dir.is_dir():
            return "missing"
        try:
            manifest = self.manifest()
        except FileNotFoundError:
            return "no manifest.json (incomplete)"
        except (json.JSONDecodeError, OSError) as exc:
            return f"unreadable manifest.json ({exc})"
        if manifest.get("hash") != self.hash:
            return "manifest hash does not match the directory"
        for rel, meta in manifest.get("files", {}).items():
            p = self.dir / rel
            if not p.is_file():
                return f"file {rel} is missing"
            if p.stat().st_size != meta["size"]:
                return f"file {rel} has the wrong size"
            if file_digest(p) != meta["blake2b"]:
                return f"file {rel} fails its checksum"
        return None

    @contextlib.contextmanager
    def ensure(self, collective: bool = False) -> Iterator["Path | None"]:
        """Yield None if a verified copy exists (and --force is off), else a temp dir to build into.

        Across ranks (:mod:`harness.distributed`): rank 0 decides and builds; with ``collective`` every rank
        runs the build (each its share; the others' folders are thrown away), else the others skip it. All
        ranks leave when rank 0 has published the stage."""
        from harness import distributed

        if not distributed.coordinating():
            with self._ensure_here() as out:
                yield out
            return
        if distributed.is_main():
            with self._ensure_here() as out:
                build = distributed.broadcast(out is not None)
                if build and not collective:
                    with distributed.solo():
                        yield out
                elif build:
                    with distributed.independent():
                        yield out
                else:
                    yield out
            distributed.barrier()  # (not after a failed build: torchrun stops the others when rank 0 exits)
            return
        build = distributed.broadcast(None)
        if build and collective:
            tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-rank{distributed.rank()}-"))
            try:
                with distributed.independent():
                    yield tmp
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            yield None
        distributed.barrier()
        self.info = self.manifest().get("info", {})  # as rank 0 published it
        self.store.ready.add(self.hash)

    @contextlib.contextmanager
    def _ensure_here(self) -> Iterator["Path | None"]:
        if self.hash in self.store.ready:  # already ensured in this run: no second check, no second record
            self.info = self.manifest().get("info", {})
            yield None
            return
        t0 = time.perf_counter()
        problem = self.verify()
        if problem is None and not self.store.force:
            self._reuse(t0)
            yield None
            return
        with stage_lock(self.dir, f"{self.name} {self.hash[:12]}"):
            if problem is not None:
                problem = self.verify()  # another process may have built it while this one waited
                if problem is None and not self.store.force:
                    self._reuse(t0, ", built meanwhile by another process")
                    yield None
                    return
            if problem not in (None, "missing"):
                aside = self.dir.with_name(f"{self.dir.name}.corrupt-{int(time.time())}")
                log.warning("stage %s at %s is unusable (%s): moved to %s and recomputed",
                            self.name, _rel(self.dir), problem, aside.name)
                os.replace(self.dir, aside)
            t0 = time.perf_counter()  # the build, not the wait
            tmp = self.dir.with_name(f"{self.dir.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
            tmp.mkdir(parents=True)
            log.info("build  %s %s%s", self.name, self.hash[:12], " (--force)" if problem is None else "")
            try:
                yield tmp
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            seconds = time.perf_counter() - t0
            manifest = {
                "stage": self.name, "hash": self.hash, "key": self.key, "info": self.info,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(seconds, 3),
                "files": _checksums(tmp),
            }
            atomic_write_json(tmp / "manifest.json", manifest)
            self._publish(tmp)
            self.store.ready.add(self.hash)
            self.store.records.append(StageRecord(self.name, self.hash, str(self.dir), False, seconds, self.info,
                                                  seconds))

    def _reuse(self, t0: float, note: str = "") -> None:
        """Take the finished stage as it is: its info, a log line and a record of this run's use of it."""
        manifest = self.manifest()
        self.info = manifest.get("info", {})
        log.info("reuse  %s %s (%s%s)", self.name, self.hash[:12], _rel(self.dir), note)
        self.store.records.append(StageRecord(self.name, self.hash, str(self.dir), True, time.perf_counter() - t0,
                                              self.info, float(manifest.get("seconds") or 0.0)))
        self.store.ready.add(self.hash)

    def _publish(self, tmp: Path) -> None:
        old = None
        if self.dir.exists():
            if not self.store.force and self.verify() is None:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = self.dir.with_name(f"{self.dir.name}.old-{os.getpid()}")
            os.replace(self.dir, old)
        os.replace(tmp, self.dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


class Store:
    """The ``runs/`` tree: per-recipe run directories and the shared stage cache."""

    def __init__(self, root: Path, force: bool = False):
        self.root = Path(root)
        self.force = force
        self.records: list[StageRecord] = []
        self.ready: set[str] = set()  # stages verified or built by this run

    def stage(self, name: str, key: dict[str, Any], scope: str = SHARED) -> Stage:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):  # a dataset slug may hold . _ +
            raise ArtifactError(f"bad stage name {name!r}")
        return Stage(self, name, key, scope)


def _rel(p: Path) -> str:
    try:
        return os.path.relpath(p)
    except ValueError:
        return str(p)
