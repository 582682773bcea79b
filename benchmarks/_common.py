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


def take_turns(fns: "dict[str, Callable[[], Any]]", repeats: int) -> "tuple[dict[str, float], dict[str, list]]":
    """Call ``fns`` in turn, ``repeats`` rounds: (fastest wall time per name, every result per name). Taking
    turns, not one side's repeats then the other's: the first call in a process pays one-time set-up (CPU
    kernels, allocations), and a drift in the machine's speed hits both sides alike."""
    best = {name: float("inf") for name in fns}
    results: dict[str, list] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name].append(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, results


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


class PeakRSS:
    """The peak resident memory of this process within a ``with`` block (``.bytes``), sampled from
    ``/proc/self/statm`` every ``every`` seconds by a thread (``ru_maxrss`` only ever grows, so it cannot
    tell one stage's peak from an earlier one's). Where /proc is missing, ``ru_maxrss`` at the block's end."""

    def __init__(self, every: float = 0.05):
        self.every, self.bytes = every, 0

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self.bytes = max(self.bytes, self.now())

    def __enter__(self) -> "PeakRSS":
        import threading

        self.bytes = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self.now())
