"""Cross-encoder teacher: ``AutoModelForSequenceClassification`` with one logit = relevance of (query, passage).

Loaded by hub name (``cross-encoder/ms-marco-MiniLM-L-6-v2``) or local path, or fine-tuned by the harness
(:mod:`harness.teachers.finetune`). Pairs are scored in length-sorted batches under
``torch.inference_mode`` (bf16 autocast on GPU); the input is ``[CLS] query [SEP] passage [SEP]`` truncated
to ``max_len`` tokens, passage first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness.data.dataset import Doc
from harness.encoding import autocast, get_device, length_sorted_batches, progress, quiet_transformers
from harness.errors import ModelError
from harness.teachers.base import Request, Teacher, split_back

log = logging.getLogger("harness")


def load_cross_encoder(path: Path, field: str = "teacher.model", allow_new_head: bool = False):
    """(tokenizer, model) from a folder; refuses a checkpoint without a trained one-logit head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()  # "some weights were newly initialized" is handled below, in words
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1,
                                                                         output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{field}: cannot load a cross-encoder from {path}: {exc}") from None
    new_head = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k]
    if new_head and not allow_new_head:
        raise ModelError(f"{field}: {path} has no trained classification head (not a cross-encoder); "
                         "name a cross-encoder, or set teacher.finetune.enabled = true to fine-tune one from it")
    return tokenizer, model


class CrossEncoderScorer:
    """Scores (query, passage) text pairs in length-sorted batches."""

    def __init__(self, tokenizer, model, max_len: int = 256, batch_size: int = 64, device=None):
        self.tokenizer, self.max_len, self.batch_size = tokenizer, max_len, batch_size
        self.device = device or get_device()
        self.model = model.to(self.device).eval()

    def encode_batch(self, queries: Sequence[str], passages: Sequence[str]):
        return self.tokenizer(list(queries), list(passages), padding=True, truncation="only_second",
                              max_length=self.max_len, return_tensors="pt").to(self.device)

    def logits(self, batch) -> "np.ndarray":
        import torch

        with torch.inference_mode(), autocast(self.device):
            out = self.model(**batch).logits
        return out[:, 0].float().cpu().numpy() if out.shape[1] == 1 else \
            (out[:, 1] - out[:, 0]).float().cpu().numpy()

    def score_texts(self, queries: Sequence[str], passages: Sequence[str], desc: str = "") -> np.ndarray:
        scores = np.zeros(len(queries), dtype=np.float32)
        lengths = [len(q) + len(p) for q, p in zip(queries, passages)]
        batches = length_sorted_batches(lengths, self.batch_size)
        with progress(len(queries), desc or "cross-encoder", unit="pair") as bar:
            for idx in batches:
                scores[idx] = self.logits(self.encode_batch([queries[i] for i in idx], [passages[i] for i in idx]))
                bar.update(len(idx))
        return scores


class CrossEncoderTeacher(Teacher):
    kind = "cross-encoder"

    def __init__(self, path: Path, docs: Mapping[str, Doc], fields: Sequence[str], max_len: int, batch_size: int,
                 field: str = "teacher.model"):
        super().__init__(docs, fields)
        tokenizer, model = load_cross_encoder(path, field)
        self.scorer = CrossEncoderScorer(tokenizer, model, max_len, batch_size)

    def score(self, requests: Sequence[Request]) -> list[np.ndarray]:
        queries = [r.query for r in requests for _ in r.doc_ids]
        passages = [self.text(d) for r in requests for d in r.doc_ids]
        flat = self.scorer.score_texts(queries, passages, desc="teacher")
        self.calls += 1
        return split_back(flat, requests)
