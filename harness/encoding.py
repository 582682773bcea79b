"""What every model forward in the harness shares: device choice, length-sorted batches, autocast, progress.

* Device: ``HARNESS_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) or the ``--device`` flag; default ``cuda`` when
  available. The device does not enter any artifact hash.
* Batches are formed over inputs sorted by length (longest first, so an out-of-memory error shows at
  once), which wastes little compute on padding; results come back in input order.
* Scoring and encoding run under ``torch.inference_mode``; on CUDA under bf16 autocast.
* Compilation: ``HARNESS_COMPILE`` — ``auto`` (default) compiles the student's transformer with
  ``torch.compile`` for the encoding of a corpus of at least ``COMPILE_MIN_PASSAGES`` passages on the CPU,
  ``on`` for every corpus, ``off`` never (see :func:`compile_corpus_encoder`).
* Progress: a tqdm bar on a terminal; when nobody sees one (stderr is a file under Slurm or CI, or
  ``HARNESS_PROGRESS=0``) a log line every ``HARNESS_LOG_EVERY`` seconds (default 30; 0 = none) with the
  stage, progress, rate, ETA and the loss, so a 12-minute training is not silent between its first and
  last line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Iterator, Sequence

log = logging.getLogger("harness")


def device_name() -> str:
    want = os.environ.get("HARNESS_DEVICE", "auto")
    if want != "auto":
        return want
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_device():
    import torch

    return torch.device(device_name())


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def precision(device) -> str:
    """``HARNESS_PRECISION``: fp32, bf16, or auto (default) = bf16 autocast on CUDA and on CPUs with native
    bfloat16 (measured on a 2-core AMD EPYC with AVX512-BF16: MiniLM forward 1.8x, training step 1.6x faster
    than fp32). Like the device, it is a property of the machine: recorded in manifests, not in stage hashes."""
    want = os.environ.get("HARNESS_PRECISION", "auto")
    if want in ("fp32", "bf16"):
        return want
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else "fp32"


# torch.compile of the transformer, measured on 2 CPU cores (benchmarks/cpu_inference.py, SciFact dev over 1,000
# passages at 256 tokens, the shipped students): dense 1.25x and SPLADE 1.15x the passages/s of eager bf16 at
# the same nDCG@10 (±0.002), after ~25 s of compilation on a cold cache: it pays from ~10,000 passages on.
# ColBERT: 1.22x but nDCG@10 -0.0036, so not by default.
COMPILE_MIN_PASSAGES = 20_000


def compile_corpus_encoder(passages: int, device, family_gains: bool = True) -> bool:
    """Whether to ``torch.compile`` the student's transformer to encode a corpus of at least ``passages``
    passages (what the index stage read ahead: ``COMPILE_MIN_PASSAGES`` or the whole corpus). ``HARNESS_COMPILE``: ``auto`` compiles on the
    CPU from ``COMPILE_MIN_PASSAGES`` on, for the families where it was measured to pay at the same quality
    (``family_gains``: the student's ``compile_for_corpus``); ``on`` always, ``off`` never. Like precision, a
    property of the machine: recorded in the stage's figures, not in its hash."""
    want = env_choice("HARNESS_COMPILE")
    if want != "auto":
        return want == "on"
    return family_gains and device.type == "cpu" and passages >= COMPILE_MIN_PASSAGES


ENV_CHOICES = {"HARNESS_COMPILE": ("auto", "on", "off"), "HARNESS_PRECISION": ("auto", "fp32", "bf16")}


def env_choice(name: str) -> str:
    """The value of one of the :data:`ENV_CHOICES` settings (default ``auto``); another is one line naming it."""
    value = os.environ.get(name, "auto")
    if value not in ENV_CHOICES[name]:
        from harness.errors import UserInputError

        raise UserInputError(f"{name}: expected {', '.join(ENV_CHOICES[name])}, got {value!r}")
    return value


def check_environment() -> None:
    """The settings read from the environment deep inside a run, checked before any work starts: a typo
    is one line naming the variable, not a failure after an hour of training."""
    for name in ENV_CHOICES:
        env_choice(name)


def autocast(device) -> contextlib.AbstractContextManager:
    import torch

    if precision(device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (ties by index: deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


_active_bars = 0


def rank_tag() -> str:
    """``[rank k] `` under a multi-process launcher (torchrun sets RANK and WORLD_SIZE), else ``""``."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return f"[rank {os.environ.get('RANK', '?')}] "
    return ""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Heartbeat:
    """Wraps a progress bar; every ``every`` seconds logs one line a person can follow in a log file::

        progress train colbert: 52/104 step (50%), 0.87 step/s, ETA 1m00s, loss 6.123
    """

    def __init__(self, bar, total: int, desc: str, unit: str, every: float):
        self.bar, self.total, self.desc, self.unit, self.every = bar, total, desc, unit, every
        self.n, self.postfix = 0, {}
        self.t0 = self.last = time.monotonic()
        self.n0 = None  # the count after the first update: a resumed loop's first update is the resumed part

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.n += n
        if self.n0 is None:  # the rate counts from here
            self.n0, self.t0 = self.n, time.monotonic()
            return
        now = time.monotonic()
        if self.every > 0 and now - self.last >= self.every:
            self.last = now
            log.info("%s", self.line(now))

    def set_postfix(self, **kw) -> None:
        self.bar.set_postfix(**kw)
        self.postfix = kw

    def line(self, now: "float | None" = None) -> str:
        now = time.monotonic() if now is None else now
        done = self.n - (self.n0 or 0)
        rate = done / max(now - self.t0, 1e-9)
        parts = [f"{self.n:,}/{self.total:,} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{rate:.3g} {self.unit}/s")
        if rate > 0 and self.total:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        parts.extend(f"{k} {v}" for k, v in self.postfix.items())
        return f"progress {self.desc}: " + ", ".join(parts)  # (the log format adds the rank)

    def __getattr__(self, name):  # everything else is the bar's
        return getattr(self.bar, name)


def _shows_bar(setting: str) -> bool:
    if setting == "0":
        return False
    return setting == "1" or sys.stderr.isatty()


@contextlib.contextmanager
def progress(total: int, desc: str, unit: str = "it"):
    """A tqdm bar on stderr showing items/s, or (no terminal, or HARNESS_PROGRESS=0) a :class:`Heartbeat`
    line every HARNESS_LOG_EVERY seconds. Only the outermost loop reports (an answer key's, not the
    teacher's per-chunk ones)."""
    global _active_bars
    from tqdm.auto import tqdm

    setting = os.environ.get("HARNESS_PROGRESS", "auto")
    outer = not _active_bars
    shown = outer and _shows_bar(setting)
    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, disable=not shown,
               mininterval=1.0, leave=False)
    every = float(os.environ.get("HARNESS_LOG_EVERY", "30") or 0)
    handle = Heartbeat(bar, total, desc, unit, every) if outer and not shown and every > 0 else bar
    _active_bars += 1
    try:
        yield handle
    finally:
        _active_bars -= 1
        bar.close()


def chunks(seq: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def quiet_transformers() -> None:
    """No per-load progress bars or 'newly initialized' notices: the harness reports what matters itself."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
