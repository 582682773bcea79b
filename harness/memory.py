"""Handing freed memory back to the system between the long loops' iterations.

glibc's allocator keeps what a process frees for reuse, and with tensors whose sizes change from one
iteration to the next (batches of passages of different lengths) what it keeps grows with the iterations:
measured here, 63 training steps of the SciFact dense multi-task student took the process from 2.1 to 5.4 GB
(208 steps: to 7.9 GB with the JVM), and one 20,000-passage encoding call at 32 tokens held 350 MB of freed
activations. ``malloc_trim`` returns it: after each corpus chunk (the index stage) and every
``TRIM_EVERY_STEPS`` training steps (63 steps: peak 4.4 GB, the same 96 s; trimming every step held 3.7 GB
but cost 25 % more time, the pages being faulted in again each step).
"""

from __future__ import annotations

import ctypes
import functools

TRIM_EVERY_STEPS = 10


def release_freed_memory() -> None:
    """Hand the memory the C allocator holds freed back to the system (glibc's ``malloc_trim``). Elsewhere
    (no glibc) nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
