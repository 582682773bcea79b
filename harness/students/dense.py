"""Dense bi-encoder student: one vector per text, scored by dot product (or cosine).

    s(q, d) = e(q) · e(d),     e(x) = pool(BERT(x))       (CLS or mean pooling)

Margin-MSE's original student (Hofstätter et al., 2020: a BERT_CLS dot-product model), served from FAISS.
Saved in sentence-transformers' layout (the transformer at the root, ``1_Pooling/config.json``,
``modules.json``, plus ``2_Normalize`` when normalised) so ``SentenceTransformer(path)`` loads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from harness.errors import ModelError
from harness.students.base import Student, quiet_transformers, truncate_layers


class Dense(Student):
    family = "dense"
    compile_for_corpus = True  # 1.25x the passages/s, nDCG@10 +0.0000 (SciFact dev, 1,000 passages, 2 cores)

    def __init__(self, backbone, tokenizer, settings: dict):
        super().__init__(tokenizer, settings)
        self.backbone = backbone
        self.pooling = settings.get("pooling", "cls")  # resolved from "auto" by students.dense_embedding
        self.normalize = bool(settings.get("normalize", False))

    def embed(self, enc) -> torch.Tensor:
        hidden = self.backbone(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    def encode_queries(self, texts: Sequence[str]) -> torch.Tensor:
        return self.embed(self.tokenize(texts, self.query_max_len))

    def encode_docs(self, texts: Sequence[str]) -> torch.Tensor:
        return self.embed(self.tokenize(texts, self.doc_max_len))

    def score_groups(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        b = q.shape[0]
        return torch.einsum("bh,bgh->bg", q, d.view(b, -1, d.shape[-1]))

    def score_all(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return q @ d.T

    def _infer_query_batch(self, texts: Sequence[str]) -> list:
        return list(self.encode_queries(texts).float().cpu().numpy())

    def _infer_doc_batch(self, texts: Sequence[str]) -> list:
        return list(self.encode_docs(texts).float().cpu().numpy())

    def _save_model(self, path: Path) -> None:
        self.backbone.save_pretrained(path)
        dim = self.backbone.config.hidden_size
        (path / "1_Pooling").mkdir(exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": dim, "pooling_mode_cls_token": self.pooling == "cls",
            "pooling_mode_mean_tokens": self.pooling == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
            (path / "2_Normalize").mkdir(exist_ok=True)
        (path / "modules.json").write_text(json.dumps(modules, indent=2))
        (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": self.doc_max_len,
                                                                    "do_lower_case": False}, indent=2))
        (path / "config_sentence_transformers.json").write_text(json.dumps(
            {"similarity_fn_name": "cosine" if self.normalize else "dot"}, indent=2))


def build_dense(path: Path, settings: dict, field: str = "student.model") -> Dense:
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        backbone = AutoModel.from_pretrained(path, add_pooling_layer=False) \
            if _is_bert(path) else AutoModel.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{field}: cannot load an encoder from {path}: {exc}") from None
    kept = truncate_layers(backbone, int(settings.get("layers", 0)), settings.get("layer_pick", "first"))
    return Dense(backbone, tokenizer, {**settings, "layers": kept})


def _is_bert(path: Path) -> bool:
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type") == "bert"
    except (OSError, json.JSONDecodeError):
        return False
