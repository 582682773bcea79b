"""What every benchmark shares: the machine's description, a best-of-N timer, and the report.

Each benchmark measures the harness against the raw library (or the peer a user would pick instead) in the
same run, on the same inputs and precision, and ends with :func:`report`: its figures in
``benchmarks/results/<name>.json`` (``ratio``, ``floor``, ``higher_is_better``, the figures behind the
ratio, the machine) and ``ratio=<value>`` as the last line of stdout.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(os.environ.get("HARNESS_BENCH_RESULTS", ROOT / "benchmarks" / "results"))


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def best_of(fn: Callable[[], Any], repeats: int) -> "tuple[float, Any]":
    """(fastest wall time of ``repeats`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(name: str, ratio: float, floor: float, higher_is_better: bool = True, **figures: Any) -> None:
    """Write ``benchmarks/results/<name>.json`` and print ``ratio=`` last."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    ok = ratio >= floor if higher_is_better else ratio <= floor
    data = {"name": name, "ratio": round(ratio, 4), "floor": floor, "higher_is_better": higher_is_better,
            "meets_floor": ok, "figures": figures, "machine": machine(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    for k, v in figures.items():
        print(f"{k}: {v}")
    print(f"{name}: {'meets' if ok else 'BELOW'} its floor ({'>=' if higher_is_better else '<='} {floor})")
    print(f"ratio={ratio:.4f}")
