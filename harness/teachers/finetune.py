"""Fine-tune a cross-encoder teacher from a backbone on the training groups — through the students' training
loop (:func:`harness.distill.trainer.train_student`), so it has the same seeded batches, bf16 autocast,
warm-up/decay schedule, gradient clipping, logging and checkpoints (a killed fine-tuning resumes where it
stopped and gives what an uninterrupted one gives).

Each step takes ``groups_per_step`` training examples (a query, one of its positives, and its N hard
negatives from BM25; a short negative list is repeated, as for students) and minimises ``softmax`` — the
listwise cross-entropy of the positive (LCE, Gao, Dai & Callan, ECIR 2021) — or ``bce`` (positives
up-weighted by N); see :mod:`harness.distill.losses.labels`. The result is saved as a Hugging Face
``AutoModelForSequenceClassification`` folder with its tokenizer (one logit).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

import torch

from harness.data.dataset import Doc
from harness.distill.groups import Group
from harness.distill.targets import TargetSource

log = logging.getLogger("harness")

LOSS = {"softmax": "lce", "bce": "bce"}  # teacher.finetune.loss -> the registered label loss


class CrossEncoderTrainee(torch.nn.Module):
    """A cross-encoder seen by the training loop as a student: "encoding" keeps the texts, and a group's
    scores are the model's logits on (query, passage) pairs."""

    family = "cross-encoder"

    def __init__(self, tokenizer, model, max_len: int):
        super().__init__()
        self.tokenizer, self.model, self.max_len = tokenizer, model, max_len

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_queries(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    def encode_docs(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    def score_groups(self, queries: list[str], passages: list[str]) -> torch.Tensor:
        b = len(queries)
        g = len(passages) // b
        enc = self.tokenizer([q for q in queries for _ in range(g)], passages, padding=True,
                             truncation="only_second", max_length=self.max_len, return_tensors="pt").to(self.device)
        return self.model(**enc).logits[:, 0].view(b, g)

    def step_figures(self, q_rep, d_rep) -> dict:
        return {}


class Labels(TargetSource):
    """[1, 0, …, 0] per group: the label losses read only which passage is the positive."""

    name = "labels"

    def __call__(self, qids, doc_ids, queries, device):
        t = torch.zeros(len(qids), len(doc_ids[0]), device=device)
        t[:, 0] = 1.0
        return t


def finetune_cross_encoder(backbone: Path, groups: Sequence[Group], queries: Mapping[str, str],
                           docs: Mapping[str, Doc], fields: Sequence[str], cfg, seed: int, out_dir: Path,
                           scratch: "Path | None" = None, checkpoint_every: int = 0) -> dict:
    from harness.distill.trainer import Objective, make_examples, train_student
    from harness.encoding import get_device
    from harness.errors import DataError
    from harness.teachers.cross_encoder import load_cross_encoder

    torch.manual_seed(seed)
    tokenizer, model = load_cross_encoder(backbone, "teacher.finetune.backbone", allow_new_head=True)
    trainee = CrossEncoderTrainee(tokenizer, model, cfg.max_len).to(get_device())
    size = 1 + max((len(g.negatives) for g in groups), default=0)
    examples = make_examples(groups, size)
    if not examples:
        raise DataError("teacher.finetune: no training group has both a positive and a negative")
    distill = SimpleNamespace(variant="static", loss=LOSS[cfg.loss], pairs="all", temperature=1.0,
                              target_scale="none", scale_a=1.0, scale_b=0.0)
    train = SimpleNamespace(epochs=cfg.epochs, max_steps=0, batch_queries=cfg.groups_per_step, lr=cfg.lr,
                            warmup=cfg.warmup, weight_decay=0.01, checkpoint_every=checkpoint_every)
    info = train_student(trainee, examples, queries, lambda d: docs[d].contents(fields), Labels(),
                         Objective("cross-encoder", distill), train, seed, out_dir,
                         scratch or out_dir.with_name(out_dir.name + ".partial"))
    model.eval()
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    log.info("teacher fine-tuned: %d steps, %d examples, %.0f s, loss %.3f -> %.3f", info["steps"],
             len(examples), info["train_seconds"], info["loss_first10"], info["loss_last10"])
    return {**info, "seconds": info["train_seconds"]}
