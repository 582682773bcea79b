"""One recipe across N processes: ``torchrun --nproc-per-node N -m harness run RECIPE`` (or ``harness run
--nproc N``, which launches that).

Every rank runs the same pipeline. Rank 0 builds and writes every stage while the others wait for it and
then read what it wrote — except inside the stages whose work is split across the ranks ("collective"):

* the answer key: rank r scores chunks r, r + N, … (each chunk a file in the stage's resumable
  ``.partial`` folder), rank 0 joins them;
* the student: each rank takes every N-th query of each batch; the loss is weighted by the share of the
  batch and the gradients are summed over the ranks with ``all_reduce`` before clipping and the optimiser
  step — what DDP does — so N processes × batch/N follow 1 process × batch; the checkpoint (rank 0's) is
  the same whatever N, so a run resumes under another N;
* a student's index: the corpus's length-sorted batches are dealt to the ranks (batch b to rank b mod N,
  so every passage is encoded in the batch it would be in one process: the vectors are the same) and
  gathered; rank 0 writes the index.

Inside a rank-0-only build everything runs single-process (:func:`solo`); inside a collective build the
ranks may take different paths (only a rank with chunks to score loads the teacher), so the stages nested
there are not coordinated (:func:`independent`): each rank ensures them like any process sharing the runs
directory, under the stage locks. Backend: nccl on CUDA (each
rank on ``cuda:<LOCAL_RANK>``), gloo on the CPU. A rank that dies makes the others fail (torchrun stops
them); a re-run resumes from the stages and checkpoints already written.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import threading
from typing import Any, Iterator

log = logging.getLogger("harness")

_local = threading.local()


def requested() -> int:
    """The world size a launcher asked for (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init() -> None:
    """Join the process group torchrun describes (no-op in one process)."""
    if requested() <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and os.environ.get("HARNESS_DEVICE", "auto") in ("auto", "cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    minutes = float(os.environ.get("HARNESS_DIST_TIMEOUT_MIN", "60"))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
    log.info("distributed: rank %d of %d (pid %d, %s)", dist.get_rank(), dist.get_world_size(), os.getpid(), backend)


def _dist():
    if getattr(_local, "solo", False):
        return None
    dist = sys.modules.get("torch.distributed")  # never imported: no process group (and no torch import here)
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def active() -> bool:
    return size() > 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes."""
    dist = sys.modules.get("torch.distributed")
    return dist is None or not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@contextlib.contextmanager
def _flag(name: str) -> Iterator[None]:
    saved = getattr(_local, name, False)
    setattr(_local, name, True)
    try:
        yield
    finally:
        setattr(_local, name, saved)


def solo() -> "contextlib.AbstractContextManager[None]":
    """Rank 0 alone for a while (a stage only it builds): collectives inside are single-process."""
    return _flag("solo")


def independent() -> "contextlib.AbstractContextManager[None]":
    """Inside a collective build: stage checks are each rank's own (collective operations still are shared)."""
    return _flag("independent")


def coordinating() -> bool:
    """Whether a stage check is decided by rank 0 for every rank."""
    return active() and not getattr(_local, "independent", False)


def _lost(exc: Exception) -> Exception:
    from harness.errors import HarnessError

    return HarnessError(f"rank {rank()}: lost contact with the other ranks (did one die?): "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                        "re-run to resume from what was written")


def _call(op, *args, **kwargs) -> None:
    """A collective operation; a peer that is gone becomes one clear error."""
    try:
        op(*args, **kwargs)
    except RuntimeError as exc:
        raise _lost(exc) from None


def barrier() -> None:
    d = _dist()
    if d:
        _call(d.barrier)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    d = _dist()
    if not d:
        return obj
    box = [obj]
    _call(d.broadcast_object_list, box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    d = _dist()
    if not d:
        return [obj]
    out: list[Any] = [None] * d.get_world_size()
    _call(d.all_gather_object, out, obj)
    return out


def sum_(tensor) -> Any:
    """Sum a tensor over the ranks, in place (returns it)."""
    d = _dist()
    if d:
        _call(d.all_reduce, tensor)
    return tensor


def sum_grads(params) -> None:
    """Sum the parameters' gradients over the ranks (one flat buffer, as DDP's buckets)."""
    d = _dist()
    if not d:
        return
    import torch

    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    sum_(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n
