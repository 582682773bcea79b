"""Artifacts: content-addressed stage directories, atomic writes, run manifests."""

from harness.artifacts.store import (SHARED, Stage, StageRecord, Store, atomic_write_json, atomic_write_text,
                                     cold_cache_seconds, format_time_by_stage_kind, time_by_stage_kind)

__all__ = ["SHARED", "Stage", "StageRecord", "Store", "atomic_write_json", "atomic_write_text",
           "cold_cache_seconds", "format_time_by_stage_kind", "time_by_stage_kind"]
