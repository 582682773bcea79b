"""One training loop for every student family and distillation variant.

A variant is (where the targets come from) × (which loss) × (which auxiliary tasks): the loop asks a
:class:`~harness.distill.targets.TargetSource` for targets and an :class:`Objective` for the loss.

Each step takes ``train.batch_queries`` examples — a query, one of its positives and its N hard negatives
(G = N + 1 passages, positive first) — in an order fixed by the seed, so an interrupted run that resumes
from its last checkpoint (model, optimiser, scheduler, RNG state; every ``train.checkpoint_every`` steps)
sees the same batches as an uninterrupted one. AdamW, linear warm-up then decay, gradient clipping at 1.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from harness.distill.groups import Group
from harness.distill.losses import LOSSES, REGULARISERS, Regularised
from harness.registry import VARIANTS
from harness.encoding import autocast, precision, progress
from harness.memory import TRIM_EVERY_STEPS, release_freed_memory

log = logging.getLogger("harness")

def resolve_loss(family: str, distill) -> str:
    """The registered loss a student trains with: its variant's fixed loss, else ``distill.loss``, else (auto)
    its family's default."""
    from harness.distill.variants import effective

    loss = effective(distill).loss
    if loss == "auto":
        from harness.registry import FAMILIES

        return FAMILIES[family].default_loss
    return loss


def make_examples(groups: Sequence[Group], group_size: int) -> list[tuple[str, tuple[str, ...]]]:
    """(qid, (positive, negative_1..N)) for every positive; short negative lists are repeated cyclically so
    every example has ``group_size`` passages."""
    n_neg = group_size - 1
    out = []
    for g in groups:
        if not g.negatives:
            continue
        negs = tuple(g.negatives[i % len(g.negatives)] for i in range(n_neg))
        out.extend((g.qid, (pos, *negs)) for pos in g.positives)
    return out


class Objective(torch.nn.Module):
    """The main distillation loss (``distill.loss``, from :data:`~harness.registry.LOSSES`), composed with the
    student family's regulariser (FLOPS for SPLADE), with optional score scaling.

    ``regulariser``: (name in :data:`~harness.registry.REGULARISERS`, λ_q, λ_d, share of the training steps
    over which λ ramps up), or None; the ramp follows ``total_steps``, which the training loop sets."""

    def __init__(self, family: str, distill, regulariser=None, total_steps: int = 1):
        super().__init__()
        from harness.distill.variants import effective

        self.distill = distill
        self.loss_name = resolve_loss(family, distill)
        self.main = LOSSES[self.loss_name].from_settings(effective(distill))
        self.scaled = VARIANTS[distill.variant].scaled_targets  # scores on the teacher's scale: target_scale applies
        self.regularised = None
        self.ramp_share = 0.0
        if regulariser is not None:
            name, lam_q, lam_d, self.ramp_share = regulariser
            self.regularised = Regularised(self.main, REGULARISERS[name](), lam_q, lam_d)
        self.total_steps = total_steps
        self.learned = distill.target_scale == "learned" and self.scaled
        if self.learned:
            self.alpha = torch.nn.Parameter(torch.tensor(1.0))
            self.beta = torch.nn.Parameter(torch.tensor(0.0))

        # target_scale "auto": (a, b) set by calibrate_scale() before the first step; saved in checkpoints
        self.register_buffer("scale", torch.tensor([distill.scale_a, distill.scale_b], dtype=torch.float32))

    @property
    def total_steps(self) -> int:
        return self._total_steps

    @total_steps.setter
    def total_steps(self, n: int) -> None:
        self._total_steps = n
        if self.regularised is not None:
            self.regularised.ramp_steps = int(self.ramp_share * n)

    def calibrate_scale(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """a = std(s)/std(t), b = mean(s) − a·mean(t): the teacher's targets moved onto the untrained student's
        score distribution, so distillation teaches the *ranking* instead of first shrinking every score
        (measured: plain MSE to ensemble z-scores collapsed SPLADE from ~200 to ~22 terms per passage)."""
        a = float(scores.std() / targets.std().clamp(min=1e-6))
        b = float(scores.mean() - a * targets.mean())
        self.scale.copy_(torch.tensor([a, b]))

    def forward(self, q_rep, d_rep, scores: torch.Tensor, targets: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        d = self.distill
        if d.target_scale in ("fixed", "auto") and self.scaled:
            targets = self.scale[0] * targets + self.scale[1]
        if self.learned:
            scores = self.alpha * scores + self.beta
        if self.regularised is not None:
            return self.regularised(scores, targets, q_rep, d_rep, step)
        return (loss := self.main(scores, targets)), {"distill": loss}


def _calibrate(student, objective, examples, order, queries, doc_text, targets, batch_queries: int,
               batches: int = 4) -> None:
    """Estimate target_scale "auto" from the untrained student on the first batches (no gradients)."""
    s_all, t_all = [], []
    student.eval()
    with torch.inference_mode(), autocast(student.device):
        for b in range(batches):
            batch = [examples[i] for i in order[b * batch_queries:(b + 1) * batch_queries]]
            if not batch:
                break
            qids, doc_ids = [q for q, _ in batch], [docs for _, docs in batch]
            s_all.append(student.score_groups(student.encode_queries([queries[q] for q in qids]),
                                              student.encode_docs([doc_text(d) for ds in doc_ids for d in ds])).float())
            t_all.append(targets(qids, doc_ids, queries, student.device).float())
    objective.calibrate_scale(torch.cat(s_all).flatten(), torch.cat(t_all).flatten())
    log.info("train: target scale (auto) t -> %.3f·t + %.3f", float(objective.scale[0]), float(objective.scale[1]))


def _adamw(groups: list, lr: float, weight_decay: float) -> "tuple[torch.optim.Optimizer, bool]":
    """AdamW, fused where torch has the kernel for the parameters' device (the same update in one pass over
    all tensors: measured on 2 CPU cores for MiniLM's 22M weights, 15 ms a step against 80 ms for torch's
    default per-tensor loop on the CPU; a training step of the dense student is 1.2-1.9 s here, so it buys
    3-5 %; sentence-transformers' trainer uses it too). (optimizer, fused?)"""
    try:
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True), True
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay), False


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_student(student, examples: Sequence[tuple[str, tuple[str, ...]]], queries: Mapping[str, str],
                  doc_text: Callable[[str], str], targets, objective: Objective, train, seed: int,
                  out_dir: Path, scratch: Path, extra_step: "Callable | None" = None,
                  refresh: "Callable | None" = None,
                  learning_rates: "Sequence[tuple[Sequence[torch.nn.Parameter], float]]" = ()) -> dict:
    """Train ``student`` in place; writes ``train_log.jsonl`` to ``out_dir``; returns figures.

    ``extra_step(student, q_rep, d_rep, qids, doc_ids, step) -> (loss, parts)`` adds auxiliary losses;
    ``refresh(student, examples, step) -> examples | None`` may replace the examples' negatives (re-mining);
    ``learning_rates``: (parameters, peak lr) trained at a rate of their own, without weight decay."""
    from transformers import get_linear_schedule_with_warmup

    if not examples:
        from harness.errors import DataError

        raise DataError("train: no training example (a query with a positive and a BM25 negative)")
    from harness import distributed

    rank, ranks = distributed.rank(), distributed.size()
    if ranks > train.batch_queries:
        from harness.errors import UserInputError

        raise UserInputError(f"train.batch_queries: {train.batch_queries} queries per step cannot be shared by "
                             f"{ranks} processes; use at least one per process")
    n_steps = max(1, math.ceil(len(examples) * train.epochs / train.batch_queries))
    if train.max_steps:
        n_steps = min(n_steps, train.max_steps)
    objective.total_steps = n_steps
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n_steps * train.batch_queries:
        perm = list(range(len(examples)))
        rng.shuffle(perm)
        order.extend(perm)
    params = list({id(p): p for p in list(student.parameters()) + list(objective.parameters())
                   if p.requires_grad}.values())  # tied weights (an MLM head's decoder) appear once
    scale_ids = {id(objective.alpha), id(objective.beta)} if objective.learned else set()
    own = {id(p) for ps, _ in learning_rates for p in ps}
    groups = [{"params": [p for p in params if id(p) not in scale_ids and id(p) not in own]}]
    for ps, lr in learning_rates:
        groups.append({"params": list(ps), "lr": lr, "weight_decay": 0.0})
    if scale_ids:  # two scalars: they must move far in few steps, so their own learning rate
        groups.append({"params": [objective.alpha, objective.beta], "lr": 1e-2, "weight_decay": 0.0})
    opt, fused = _adamw(groups, train.lr, train.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(train.warmup * n_steps), n_steps)
    history: list[dict] = []
    start = 0
    scratch.mkdir(parents=True, exist_ok=True)
    ckpt = scratch / "checkpoint.pt"
    torch.manual_seed(seed)
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=student.device, weights_only=False)
        student.load_state_dict(state["student"])
        objective.load_state_dict(state["objective"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("extra_rng") is not None and getattr(extra_step, "generator", None) is not None:
            extra_step.generator.set_state(state["extra_rng"])  # multi-task masks
        start, history = state["step"], state["history"]
        if state.get("examples") is not None:  # re-mined negatives in force at the checkpoint
            examples = [(q, tuple(d)) for q, d in state["examples"]]
            if hasattr(targets, "prepare"):
                targets.prepare(examples, queries)
        log.info("train: resuming from step %d of %d (checkpoint in %s)", start, n_steps, scratch)
    if objective.distill.target_scale == "auto" and objective.scaled and start == 0:
        _calibrate(student, objective, examples, order, queries, doc_text, targets, train.batch_queries)
    student.train()
    t0 = time.perf_counter()
    with progress(n_steps, f"train {student.family}", unit="step") as bar:
        bar.update(start)
        for step in range(start, n_steps):
            if refresh is not None and step > 0:
                new = refresh(student, examples, step)
                if new is not None:
                    examples = new
                    student.train()
            batch = [examples[i] for i in order[step * train.batch_queries:(step + 1) * train.batch_queries]]
            share = batch[rank::ranks]  # this process's queries of the step (all of them in one process)
            weight = len(share) / len(batch)  # losses are means over queries: weighted, then summed over ranks
            qids = [q for q, _ in share]
            doc_ids = [docs for _, docs in share]
            with autocast(student.device):  # bf16 where the hardware has it; losses below in fp32
                q_rep = student.encode_queries([queries[q] for q in qids])
                d_rep = student.encode_docs([doc_text(d) for docs in doc_ids for d in docs])
                scores = student.score_groups(q_rep, d_rep).float()
            tgt = targets(qids, doc_ids, queries, scores.device)
            loss, parts = objective(q_rep, d_rep, scores, tgt, step)
            if extra_step is not None:
                with autocast(student.device):
                    extra, extra_parts = extra_step(student, q_rep, d_rep, qids, doc_ids, step)
                loss = loss + extra
                parts.update(extra_parts)
            (loss * weight if ranks > 1 else loss).backward()
            if ranks > 1:  # DDP's all-reduce: the gradient of the whole batch's mean loss on every rank
                distributed.sum_grads(params)
                logged = distributed.sum_(torch.stack([loss.detach().float(), *(
                    v.detach().float().reshape(()) for v in parts.values())]) * weight)
                loss_value, part_values = float(logged[0]), [float(x) for x in logged[1:]]
            else:
                loss_value, part_values = loss.item(), [float(v.detach()) for v in parts.values()]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if (step + 1) % TRIM_EVERY_STEPS == 0:  # batches of varying lengths: the allocator's freed memory grows
                release_freed_memory()
            row = {"step": step + 1, "loss": round(loss_value, 5), "lr": sched.get_last_lr()[0],
                   **{k: round(v, 5) for k, v in zip(parts, part_values)}}
            row.update(student.step_figures(q_rep, d_rep))
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            bar.update(1)
            if train.checkpoint_every and (step + 1) % train.checkpoint_every == 0 and step + 1 < n_steps \
                    and distributed.is_main():  # rank 0's: the same whatever the number of processes
                _save_checkpoint(ckpt, {"step": step + 1, "student": student.state_dict(),
                                        "objective": objective.state_dict(), "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                                        else None,
                                        "extra_rng": extra_step.generator.get_state()
                                        if getattr(extra_step, "generator", None) is not None else None,
                                        "examples": list(examples) if refresh is not None else None,
                                        "history": history})
    seconds = time.perf_counter() - t0
    student.eval()
    with open(out_dir / "train_log.jsonl", "w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")
    k = min(10, len(history))
    info = {"steps": n_steps, "examples": len(examples), "resumed_from": start, "train_seconds": round(seconds, 1),
            "precision": precision(student.device), "optimizer": "AdamW (fused)" if fused else "AdamW",
            "loss_first10": round(sum(h["loss"] for h in history[:k]) / k, 4),
            "loss_last10": round(sum(h["loss"] for h in history[-k:]) / k, 4), "loss": objective.loss_name}
    if objective.learned:
        info["learned_scale"] = {"alpha": float(objective.alpha.detach()), "beta": float(objective.beta.detach())}
    if objective.distill.target_scale in ("auto", "fixed"):
        info["target_scale"] = [round(float(x), 4) for x in objective.scale]
    log.info("train: %d steps in %.0f s; loss %.4f -> %.4f", n_steps, seconds, info["loss_first10"], info["loss_last10"])
    return info
