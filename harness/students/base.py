"""What every student family shares: the backbone, tokenisation, and the two faces of a student.

* Training face (with gradients): ``encode_queries(texts)`` / ``encode_docs(texts)`` give representations;
  ``score_groups(q, d)`` scores each query against its own group of passages, ``score_all(q, d)``
  against every passage in the batch (in-batch negatives).
* Inference face (``torch.inference_mode``, length-sorted batches): ``infer_queries`` / ``infer_docs``
  give what the family's index takes (sparse term weights, token vectors, or one vector).

A student is saved in a layout its ecosystem loads (see each family) plus ``harness_student.json``
(family and settings), and loaded back with :func:`harness.students.load_student`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from harness.encoding import autocast, get_device, length_sorted_batches, progress, quiet_transformers  # noqa: F401
from harness.students.shapes import pad_batch

log = logging.getLogger("harness")

META = "harness_student.json"


def pick_layers(total: int, keep: int, pick: str = "first") -> list[int]:
    """Which of ``total`` transformer layers a ``keep``-layer student starts from: ``first`` the lowest ones
    (TinyBERT-style truncation), ``spread`` evenly spaced ending with the top layer (DistilBERT takes every
    other layer; keeping the top one keeps the output space the pooling or head was trained on)."""
    if keep <= 0 or keep >= total:
        return list(range(total))
    if pick == "first":
        return list(range(keep))
    if pick == "spread":
        step = total / keep
        return [round(step * (i + 1)) - 1 for i in range(keep)]
    raise ValueError(f"unknown layer pick {pick!r}")


def truncate_layers(model: torch.nn.Module, layers: int, pick: str = "first") -> int:
    """Keep ``layers`` transformer layers, chosen by :func:`pick_layers` (a smaller student initialised from
    a larger one's layers, as DistilBERT/TinyBERT do). Returns the number of layers kept."""
    if layers <= 0:
        return model.config.num_hidden_layers
    base = getattr(model, model.base_model_prefix, model)
    encoder_layers = list(base.encoder.layer)
    if layers < len(encoder_layers):
        base.encoder.layer = torch.nn.ModuleList([encoder_layers[i] for i in pick_layers(len(encoder_layers), layers,
                                                                                         pick)])
        model.config.num_hidden_layers = layers
    return len(base.encoder.layer)


class Student(torch.nn.Module):
    family = "student"
    # whether HARNESS_COMPILE=auto compiles the transformer to encode a large corpus: only where
    # benchmarks/cpu_inference.py measured it faster at the same nDCG@10 (± 0.002) on the dev split
    compile_for_corpus = False

    def __init__(self, tokenizer, settings: dict[str, Any]):
        super().__init__()
        self.tokenizer = tokenizer
        self.settings = dict(settings)
        self.query_max_len = int(settings.get("query_max_len", 32))
        self.doc_max_len = int(settings.get("doc_max_len", 256))
        self.batch_size = int(settings.get("batch_size", 32))

    # ---- training face -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokenize(self, texts: Sequence[str], max_len: int):
        """:meth:`tokenize_cpu` on the student's device."""
        return self.tokenize_cpu(texts, max_len).to(self.device)

    def tokenize_cpu(self, texts: Sequence[str], max_len: int):
        """The batch padded to its longest text rounded up to a multiple of 16 tokens (never past ``max_len``):
        few distinct shapes, so the CPU's kernels are reused and memory stays flat (:mod:`harness.students.shapes`)."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        return self.pad_batch(enc, max_len)

    def pad_batch(self, enc, max_len: int):
        return pad_batch(enc, max_len, {"input_ids": self.tokenizer.pad_token_id or 0},
                         getattr(self.tokenizer, "padding_side", "right"))

    def encode_queries(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def encode_docs(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def score_groups(self, q: Any, d: Any) -> torch.Tensor:
        """q: B queries; d: B·G passages, G per query in order → scores (B, G)."""
        raise NotImplementedError

    def score_all(self, q: Any, d: Any) -> torch.Tensor:
        """q: B queries; d: M passages → scores (B, M) (in-batch negatives)."""
        raise NotImplementedError

    # ---- inference face ------------------------------------------------------------------------------
    def encoder(self) -> torch.nn.Module:
        """The transformer under the family's head (what an auxiliary MLM task trains)."""
        return self.backbone

    def mlm_head(self) -> "torch.nn.Module | None":
        """The student's own masked-language-model head, if it has one (SPLADE's is its output layer)."""
        return None

    def step_figures(self, q_rep: Any, d_rep: Any) -> dict[str, float]:
        """Figures of one training step's representations, logged beside the loss (e.g. active terms)."""
        return {}

    def _infer(self, texts: Sequence[str], encode, desc: str) -> list:
        """Representations of ``texts`` in length-sorted batches. Under torchrun, inside a stage the ranks
        build together, batch b is encoded by rank b mod N (the same batches as one process: the same
        vectors) and every rank gets them all."""
        from harness import distributed

        out: list = [None] * len(texts)
        batches = length_sorted_batches([len(t) for t in texts], self.batch_size)
        rank, ranks = distributed.rank(), distributed.size()
        mine = batches[rank::ranks]
        was_training = self.training
        self.eval()
        try:
            with progress(sum(map(len, mine)), desc, unit="text") as bar, torch.inference_mode(), \
                    autocast(self.device):
                for idx in mine:
                    for i, item in zip(idx, encode([texts[i] for i in idx])):
                        out[i] = item
                    bar.update(len(idx))
        finally:
            self.train(was_training)
        if ranks > 1:
            for part in distributed.gather([(b, [out[i] for i in batches[b]]) for b in range(rank, len(batches), ranks)]):
                for b, items in part:
                    for i, item in zip(batches[b], items):
                        out[i] = item
        return out

    @contextlib.contextmanager
    def compiled_encoder(self):
        """The transformer (:meth:`encoder`) under ``torch.compile`` (dynamic shapes) for a while: what comes
        after it — pooling, projection, SPLADE's vocabulary head — stays as it is. Restored on exit, so what is
        saved or trained afterwards is the plain module."""
        module = self.encoder()
        owner, name = next((parent, n) for parent in self.modules() for n, child in parent.named_children()
                           if child is module)
        setattr(owner, name, torch.compile(module, dynamic=True))
        try:
            yield
        finally:
            setattr(owner, name, module)

    def infer_queries(self, texts: Sequence[str], max_len: "int | None" = None) -> list:
        """Query representations for search, read up to ``max_len`` tokens (default: the training length)."""
        with self._lengths(query=max_len):
            return self._infer(texts, self._infer_query_batch, "encode queries")

    def infer_docs(self, texts: Sequence[str], max_len: "int | None" = None) -> list:
        """Passage representations for the index, read up to ``max_len`` tokens (default: the training length)."""
        with self._lengths(doc=max_len):
            return self._infer(texts, self._infer_doc_batch, "encode passages")

    @contextlib.contextmanager
    def _lengths(self, query: "int | None" = None, doc: "int | None" = None):
        """Read texts at other lengths for a while (evaluation lengths apart from training truncation)."""
        saved = self.query_max_len, self.doc_max_len
        self.query_max_len, self.doc_max_len = query or saved[0], doc or saved[1]
        try:
            yield
        finally:
            self.query_max_len, self.doc_max_len = saved

    def _infer_query_batch(self, texts: Sequence[str]) -> list:
        raise NotImplementedError

    def _infer_doc_batch(self, texts: Sequence[str]) -> list:
        raise NotImplementedError

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._save_model(path)
        self.tokenizer.save_pretrained(path)
        (path / META).write_text(json.dumps({"family": self.family, "settings": self.settings}, indent=2) + "\n")

    def _save_model(self, path: Path) -> None:
        raise NotImplementedError
