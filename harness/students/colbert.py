"""ColBERT: late interaction over per-token vectors (Khattab & Zaharia, SIGIR 2020; Santhanam et al., NAACL 2022).

    E(x)_t = normalize(W · BERT([CLS] [marker] x [SEP])_t)        W ∈ R^{dim × hidden}, no bias
    s(q, d) = Σ_{i ∈ q} max_{j ∈ d} E(q)_i · E(d)_j             (MaxSim)

over all query tokens i (including the [MASK] augmentation) and the document's *kept* tokens j.

* **Markers.** A query marker token follows [CLS] in queries, a document marker in documents. As in PyLate,
  the markers are the added tokens ``"[Q] "`` and ``"[D] "`` (trailing space included, that is how PyLate
  registers them with ``tokenizer.add_tokens``), and their ids are *inserted* after [CLS] rather than typed
  into the text: an added non-special token is normalised (lower-cased) by a BERT tokenizer, so the text
  ``"[Q] "`` would not reliably map to it. Texts are truncated to ``max_len - 1`` tokens before the insert,
  so a sequence is at most ``max_len`` tokens long, as in PyLate. New rows of the embedding matrix come
  from ``resize_token_embeddings`` (seeded by the caller's ``torch.manual_seed``).
* **Query augmentation** (``query_augment``, default on): queries are padded with [MASK] up to
  ``query_max_len`` and every one of those vectors takes part in MaxSim — a learned soft query expansion.
  Whether the other tokens *attend to* the [MASK] tokens inside the encoder is ``attend_to_expansion_tokens``
  (default false: the original ColBERT code's ``attend_to_mask_tokens = False`` and PyLate's default; the
  [MASK] positions still attend to the query, so their outputs are informative). Without augmentation,
  padding is masked out of the query.
* **Documents** (``skip_punctuation``, default on): vectors of single-character punctuation tokens
  (``string.punctuation``) and of padding are left out of MaxSim and of the index, as in ColBERT and PyLate.

**Saved layout** — PyLate's (a sentence-transformers folder; checked against lightonai/pylate
``pylate/models/colbert.py`` and ``pylate/models/Dense.py``):

    config.json, model.safetensors, tokenizer files    the backbone (Transformer module at the root)
    sentence_bert_config.json                            {"max_seq_length", "do_lower_case"}
    1_Dense/config.json, 1_Dense/model.safetensors       the projection: {"in_features", "out_features",
                                                         "bias": false, "activation_function": Identity},
                                                         weight under "linear.weight"
    modules.json                                         [Transformer at "", pylate.models.Dense.Dense at "1_Dense"]
    config_sentence_transformers.json                    model_type "ColBERT", query_prefix "[Q] ",
                                                         document_prefix "[D] ", query_length, document_length,
                                                         do_query_expansion, attend_to_expansion_tokens,
                                                         skiplist_words, similarity_fn_name "MaxSim"

``pylate.models.ColBERT(path)`` loads it; so does sentence-transformers' ``MultiVectorEncoder`` (6.x), which
reads PyLate saves. ``harness_student.json`` (written by :meth:`Student.save`) records family and settings.
"""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from harness.errors import ModelError
from harness.students.base import Student, quiet_transformers, truncate_layers

log = logging.getLogger("harness")

QUERY_PREFIX = "[Q] "
DOC_PREFIX = "[D] "
DENSE_DIR = "1_Dense"
DEFAULTS = {"query_max_len": 32, "doc_max_len": 256, "batch_size": 32, "layers": 0, "dim": 128,
            "query_augment": True, "skip_punctuation": True, "attend_to_expansion_tokens": False}


class TokenVectors(NamedTuple):
    """A batch of token vectors: ``emb`` (B, T, dim), L2-normalised; ``mask`` (B, T) bool, True where a
    vector takes part in MaxSim."""

    emb: torch.Tensor
    mask: torch.Tensor


# ---- MaxSim --------------------------------------------------------------------------------------------

def _reduce(sim: torch.Tensor, q_mask: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """sim (..., Tq, Td) → Σ_i q_mask_i · max_{j: d_mask_j} sim_ij. A document with no kept token scores 0."""
    best = sim.masked_fill(~d_mask.unsqueeze(-2), float("-inf")).amax(dim=-1)  # (..., Tq)
    best = torch.where(torch.isfinite(best), best, torch.zeros_like(best))
    return (best * q_mask.to(best.dtype)).sum(dim=-1)


def maxsim_groups(q: TokenVectors, d: TokenVectors) -> torch.Tensor:
    """B queries against their own G documents each (d holds B·G, in order) → (B, G)."""
    b, tq, dim = q.emb.shape
    d_emb = d.emb.view(b, -1, d.emb.shape[1], dim)  # (B, G, Td, dim)
    d_mask = d.mask.view(b, -1, d.mask.shape[1])  # (B, G, Td)
    sim = torch.einsum("bih,bgjh->bgij", q.emb, d_emb)  # (B, G, Tq, Td)
    return _reduce(sim, q.mask.unsqueeze(1), d_mask)


def maxsim_all(q: TokenVectors, d: TokenVectors) -> torch.Tensor:
    """B queries against all M documents → (B, M)."""
    sim = torch.einsum("bih,mjh->bmij", q.emb, d.emb)  # (B, M, Tq, Td)
    return _reduce(sim, q.mask.unsqueeze(1), d.mask.unsqueeze(0))


# ---- the student -----------------------------------------------------------------------------------------

class ColBERT(Student):
    family = "colbert"
    compile_for_corpus = False  # 1.22x the passages/s but nDCG@10 -0.0036: outside ± 0.002, not adopted

    def __init__(self, backbone, projection: torch.nn.Linear, tokenizer, settings: dict):
        super().__init__(tokenizer, {**DEFAULTS, **settings})
        self.backbone = backbone
        self.projection = projection
        s = self.settings
        self.dim = projection.out_features
        self.query_augment = bool(s["query_augment"])
        self.skip_punctuation = bool(s["skip_punctuation"])
        self.attend_to_expansion = bool(s["attend_to_expansion_tokens"]) and self.query_augment
        if self.query_max_len < 3 or self.doc_max_len < 3:
            raise ValueError("query_max_len and doc_max_len must leave room for [CLS], the marker and [SEP] (≥ 3)")
        self.query_marker_id = _token_id(tokenizer, QUERY_PREFIX)
        self.doc_marker_id = _token_id(tokenizer, DOC_PREFIX)
        if tokenizer.mask_token_id is None:
            raise ModelError("colbert: the tokenizer has no [MASK] token for query augmentation")
        skip = sorted(_punctuation_ids(tokenizer)) if self.skip_punctuation else []
        self.register_buffer("skip_ids", torch.tensor(skip, dtype=torch.long), persistent=False)

    # ---- tokenisation ------------------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str], max_len: int, marker_id: int, pad_to_max: bool) -> dict:
        """[CLS] marker text [SEP], at most ``max_len`` tokens; padded to the batch's longest or to ``max_len``."""
        enc = self.tokenizer(list(texts), padding="max_length" if pad_to_max else True, truncation=True,
                             max_length=max_len - 1, return_tensors="pt")
        enc = self.pad_batch(enc, max_len - 1)  # few distinct lengths (16k + the marker): harness.students.shapes
        out = {"input_ids": _insert_after_cls(enc["input_ids"], marker_id),
               "attention_mask": _insert_after_cls(enc["attention_mask"], 1)}
        if "token_type_ids" in enc:
            out["token_type_ids"] = _insert_after_cls(enc["token_type_ids"], 0)
        return {k: v.to(self.device) for k, v in out.items()}

    def _vectors(self, enc: dict) -> torch.Tensor:
        hidden = self.backbone(**enc).last_hidden_state
        return F.normalize(self.projection(hidden), p=2, dim=-1)

    # ---- training face -----------------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> TokenVectors:
        enc = self._tokenize(texts, self.query_max_len, self.query_marker_id, pad_to_max=self.query_augment)
        if not self.query_augment:
            return TokenVectors(self._vectors(enc), enc["attention_mask"].bool())
        pad = enc["attention_mask"] == 0
        enc["input_ids"] = enc["input_ids"].masked_fill(pad, self.tokenizer.mask_token_id)
        if self.attend_to_expansion:
            enc["attention_mask"] = torch.ones_like(enc["attention_mask"])
        return TokenVectors(self._vectors(enc), torch.ones_like(pad))

    def encode_docs(self, texts: Sequence[str]) -> TokenVectors:
        enc = self._tokenize(texts, self.doc_max_len, self.doc_marker_id, pad_to_max=False)
        mask = enc["attention_mask"].bool()
        if self.skip_ids.numel():
            mask &= ~torch.isin(enc["input_ids"], self.skip_ids)
        return TokenVectors(self._vectors(enc), mask)

    def score_groups(self, q: TokenVectors, d: TokenVectors) -> torch.Tensor:
        return maxsim_groups(q, d)

    def score_all(self, q: TokenVectors, d: TokenVectors) -> torch.Tensor:
        return maxsim_all(q, d)

    # ---- inference face: one float32 (T × dim) array per text, kept tokens only -------------------------
    @staticmethod
    def _split(rep: TokenVectors) -> list:
        emb, mask = rep.emb.float().cpu(), rep.mask.cpu()
        return [e[m].numpy() for e, m in zip(emb, mask)]

    def _infer_query_batch(self, texts: Sequence[str]) -> list:
        return self._split(self.encode_queries(texts))

    def _infer_doc_batch(self, texts: Sequence[str]) -> list:
        return self._split(self.encode_docs(texts))

    # ---- persistence: PyLate's sentence-transformers layout ---------------------------------------------
    def _save_model(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.backbone.save_pretrained(path)
        dense = path / DENSE_DIR
        dense.mkdir(parents=True, exist_ok=True)
        _write_json(dense / "config.json", {"in_features": self.projection.in_features, "out_features": self.dim,
                                            "bias": False,
                                            "activation_function": "torch.nn.modules.linear.Identity"})
        save_file({"linear.weight": self.projection.weight.detach().float().cpu().contiguous()},
                  str(dense / "model.safetensors"))
        _write_json(path / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": DENSE_DIR, "type": "pylate.models.Dense.Dense"},
        ])
        _write_json(path / "sentence_bert_config.json", {"max_seq_length": self.doc_max_len - 1,
                                                         "do_lower_case": False})
        _write_json(path / "config_sentence_transformers.json", self.pylate_config())

    def pylate_config(self) -> dict:
        import transformers

        return {
            "__version__": {"transformers": transformers.__version__, "pytorch": torch.__version__},
            "model_type": "ColBERT",
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": QUERY_PREFIX,
            "document_prefix": DOC_PREFIX,
            "query_length": self.query_max_len,
            "document_length": self.doc_max_len,
            "attend_to_expansion_tokens": self.attend_to_expansion,
            "skiplist_words": list(string.punctuation) if self.skip_punctuation else [],
            "do_query_expansion": self.query_augment,
        }


# ---- helpers -----------------------------------------------------------------------------------------

def _insert_after_cls(x: torch.Tensor, value: int) -> torch.Tensor:
    col = torch.full((x.shape[0], 1), value, dtype=x.dtype, device=x.device)
    return torch.cat([x[:, :1], col, x[:, 1:]], dim=1)


def _token_id(tokenizer, token: str) -> int:
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or idx == tokenizer.unk_token_id:
        raise ModelError(f"colbert: the tokenizer has no {token!r} marker token")
    return int(idx)


def _punctuation_ids(tokenizer) -> set[int]:
    """Ids of the single-character punctuation tokens the vocabulary has ([UNK] is never one of them)."""
    ids = tokenizer.convert_tokens_to_ids(list(string.punctuation))
    return {int(i) for i in ids if i is not None and i != tokenizer.unk_token_id}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _saved_projection(path: Path) -> "torch.Tensor | None":
    """The projection weight of a sentence-transformers/PyLate folder (its Dense module), or None."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    dense = [m for m in modules if str(m.get("type", "")).endswith("Dense")]
    if not dense:
        return None
    if len(dense) > 1:
        raise ValueError(f"{len(dense)} Dense modules in {modules_file}; a ColBERT student has one projection")
    folder = path / dense[0]["path"]
    config = json.loads((folder / "config.json").read_text())
    if config.get("bias") or config.get("activation_function", "torch.nn.modules.linear.Identity") \
            != "torch.nn.modules.linear.Identity":
        raise ValueError(f"{folder}: a projection with a bias or an activation is not a ColBERT projection")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    else:
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    return state["linear.weight"]


def build_colbert(path: Path, settings: dict, field: str = "student.model") -> ColBERT:
    """A ColBERT student from a plain backbone folder (fresh projection, seeded by the caller) or from a
    folder saved by :meth:`ColBERT.save` / PyLate (projection reloaded)."""
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    path = Path(path)
    asked_dim = settings.get("dim")
    settings = {**DEFAULTS, **settings}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        backbone = AutoModel.from_pretrained(path)
        weight = _saved_projection(path)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"{field}: cannot load a ColBERT backbone from {path}: {exc}") from None
    added = tokenizer.add_tokens([QUERY_PREFIX, DOC_PREFIX])
    if len(tokenizer) > backbone.get_input_embeddings().weight.shape[0]:
        backbone.resize_token_embeddings(len(tokenizer))
    hidden = backbone.config.hidden_size
    if weight is None:
        projection = torch.nn.Linear(hidden, int(settings["dim"]), bias=False)
        log.info("colbert: %s has no projection; a fresh %d → %d one (and %d new marker tokens)",
                 path, hidden, projection.out_features, added)
    else:
        if weight.shape[1] != hidden:
            raise ModelError(f"{field}: {path}: projection takes {weight.shape[1]} inputs, the backbone gives {hidden}")
        if asked_dim is not None and int(asked_dim) != weight.shape[0]:
            raise ModelError(f"{field}: {path} projects to {weight.shape[0]} dimensions, the settings ask for "
                             f"dim = {asked_dim}")
        projection = torch.nn.Linear(hidden, weight.shape[0], bias=False)
        with torch.no_grad():
            projection.weight.copy_(weight)
    kept = truncate_layers(backbone, int(settings.get("layers", 0)), settings.get("layer_pick", "first"))
    return ColBERT(backbone, projection, tokenizer, {**settings, "layers": kept, "dim": projection.out_features})
