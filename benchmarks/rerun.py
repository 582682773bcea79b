"""A re-run of a finished recipe against its first run (floor: at most 0.05 of the time): every stage is
found, verified (checksums) and reused, nothing recomputed. Both runs are whole ``harness run`` processes.

    python benchmarks/rerun.py [--recipe scifact/dense-static] [--set train.max_queries=200 ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="scifact/dense-static")
    ap.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE")
    args = ap.parse_args()
    overrides = args.overrides if args.overrides is not None else [
        "train.max_queries=200", "eval.dev=false", 'eval.datasets=["beir/scifact/test"]']
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "harness", "run", args.recipe, "--runs-dir", runs, "-q",
               *[x for o in overrides for x in ("--set", o)]]
        env = {**os.environ, "HARNESS_PROGRESS": "0"}
        seconds = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - t0)
    report("rerun", seconds[1] / seconds[0], 0.05, higher_is_better=False, recipe=args.recipe, overrides=overrides,
           first_seconds=round(seconds[0], 1), rerun_seconds=round(seconds[1], 1))


if __name__ == "__main__":
    main()
