"""Stage directories: reuse when finished and intact, rebuild on --force or corruption, never read half-writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.artifacts import (Store, atomic_write_json, cold_cache_seconds, format_time_by_stage_kind,
                               time_by_stage_kind)


def build_once(store, key, payload="hello", calls=None):
    stage = store.stage("demo", key)
    with stage.ensure() as out:
        if out is not None:
            if calls is not None:
                calls.append(1)
            (out / "data.txt").write_text(payload)
            stage.info["n"] = len(payload)
    return stage


def test_build_then_reuse(tmp_path):
    calls = []
    s1 = build_once(Store(tmp_path), {"x": 1}, calls=calls)
    s2 = build_once(Store(tmp_path), {"x": 1}, calls=calls)
    assert calls == [1] and s1.dir == s2.dir
    assert (s2.dir / "data.txt").read_text() == "hello"
    manifest = json.loads((s2.dir / "manifest.json").read_text())
    assert manifest["key"] == {"x": 1} and manifest["info"] == {"n": 5} and "data.txt" in manifest["files"]
    assert s2.info == {"n": 5}  # figures come back on reuse
    # a different key is a different stage
    s3 = build_once(Store(tmp_path), {"x": 2}, calls=calls)
    assert calls == [1, 1] and s3.dir != s1.dir


def test_reuse_keeps_the_build_time(tmp_path):
    first = Store(tmp_path)
    build_once(first, {"x": 1})
    built = first.records[0]
    assert not built.reused and built.built_seconds == built.seconds > 0
    again = Store(tmp_path)
    stage = build_once(again, {"x": 1})
    rec = again.records[0]
    assert rec.reused and rec.built_seconds == stage.manifest()["seconds"] == round(built.seconds, 3)


def test_cold_cache_seconds_counts_each_stage_once():
    a = {"stage_seconds": {"_shared/bm25-index-aaa": 10.0, "_shared/student-bbb": 100.0}, "seconds": 0.5}
    b = {"stage_seconds": {"_shared/bm25-index-aaa": 10.0, "_shared/student-ccc": 50.0}, "seconds": 0.5}
    old = {"seconds": 7.0}  # written before stages were timed: its own wall time
    assert cold_cache_seconds([a, b]) == 160.0
    assert cold_cache_seconds([a, b, old]) == 167.0
    assert cold_cache_seconds([]) == 0.0


def test_time_by_stage_kind_counts_each_stage_once_and_groups_per_dataset_stages():
    a = {"stage_seconds": {"_shared/bm25-index-0123456789ab": 10.0, "_shared/student-dense-00000000000b": 100.0,
                           "run-a/eval-beir-scifact-test-0000000000aa": 1.0,
                           "run-a/retrieve-cranfield-0000000000ab": 4.0}}
    b = {"stage_seconds": {"_shared/bm25-index-0123456789ab": 10.0, "_shared/student-dense-00000000000c": 50.0,
                           "run-b/eval-beir-scifact-test-0000000000aa": 2.0}}
    rows = time_by_stage_kind([a, b])
    assert rows == [("student-dense", 150.0, 2), ("bm25-index", 10.0, 1), ("retrieve", 4.0, 1),
                    ("evaluate", 3.0, 2)]
    assert sum(s for _, s, _ in rows) == cold_cache_seconds([a, b])
    assert format_time_by_stage_kind(rows, top=2) == "student-dense 150 s (×2), bm25-index 10 s, other 7 s"


def test_force_rebuilds(tmp_path):
    calls = []
    build_once(Store(tmp_path), {"x": 1}, calls=calls)
    store = Store(tmp_path, force=True)
    s = build_once(store, {"x": 1}, payload="again", calls=calls)
    assert calls == [1, 1] and (s.dir / "data.txt").read_text() == "again"
    assert [r.reused for r in store.records] == [False]


def test_corrupted_file_is_detected_and_recomputed(tmp_path, caplog):
    s = build_once(Store(tmp_path), {"x": 1})
    (s.dir / "data.txt").write_text("hellO")  # same size, different bytes
    calls = []
    with caplog.at_level("WARNING", logger="harness"):
        s2 = build_once(Store(tmp_path), {"x": 1}, calls=calls)
    assert calls == [1] and (s2.dir / "data.txt").read_text() == "hello"
    assert "fails its checksum" in caplog.text
    aside = list(tmp_path.glob("_shared/demo-*.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / "data.txt").read_text() == "hellO"  # kept, not deleted


@pytest.mark.parametrize("damage", ["delete_file", "truncate", "drop_manifest", "garble_manifest"])
def test_other_damage_is_detected(tmp_path, damage):
    s = build_once(Store(tmp_path), {"x": 1})
    if damage == "delete_file":
        (s.dir / "data.txt").unlink()
    elif damage == "truncate":
        (s.dir / "data.txt").write_text("he")
    elif damage == "drop_manifest":
        (s.dir / "manifest.json").unlink()
    else:
        (s.dir / "manifest.json").write_text("{not json")
    assert s.verify() is not None
    calls = []
    build_once(Store(tmp_path), {"x": 1}, calls=calls)
    assert calls == [1]


def test_failed_build_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    stage = store.stage("demo", {"x": 1})
    with pytest.raises(RuntimeError):
        with stage.ensure() as out:
            (out / "partial.txt").write_text("half")
            raise RuntimeError("boom")
    assert not stage.dir.exists()
    assert [p.name for p in (tmp_path / "_shared").iterdir()] == [".locks"]  # only the (empty) lock file


def test_killed_build_is_never_used(tmp_path):
    """SIGKILL mid-build: the final directory never appears; the next run builds from scratch."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from harness.artifacts import Store
        stage = Store(Path({str(tmp_path)!r})).stage("demo", {{"x": 1}})
        with stage.ensure() as out:
            (out / "data.txt").write_text("half")
            print("building", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = [p for p in (tmp_path / "_shared").iterdir() if p.name != ".locks"]
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0].name
    calls = []
    s = build_once(Store(tmp_path), {"x": 1}, calls=calls)
    assert calls == [1] and (s.dir / "data.txt").read_text() == "hello"


def test_atomic_write_json(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic_write_json(p, {"v": 1})
    atomic_write_json(p, {"v": 2})
    assert json.loads(p.read_text()) == {"v": 2}
    assert [x.name for x in p.parent.iterdir()] == ["b.json"]
