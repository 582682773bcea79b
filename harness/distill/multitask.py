"""The multi-task variant's auxiliary losses: MLM on passages and in-batch contrastive, added to distillation.

    L = L_distill + w_mlm · L_MLM(positive passages) + w_ctr · L_InfoNCE(in-batch)

The in-batch term reuses the step's representations (every passage of the batch is a candidate for every
query). MLM needs a masked-LM head: SPLADE has one; ColBERT and dense students get an auxiliary head tied to
their input embeddings (initialised like SPLADE's: identity transform), trained with them and not saved.
MLM logits are computed only at the masked positions, so the extra cost is one encoder pass over the B
positive passages.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from harness.distill.losses import InBatchContrastive, MaskedLM, mask_tokens


class MultitaskAux(torch.nn.Module):
    def __init__(self, student, cfg, doc_text: Callable[[str], str], seed: int):
        super().__init__()
        self.cfg = cfg
        self.doc_text = doc_text
        self.contrastive = InBatchContrastive(cfg.temperature)
        self.mlm_loss = MaskedLM()
        self.generator = torch.Generator().manual_seed(seed)
        self.head = None
        if student.mlm_head() is None and cfg.mlm > 0:  # a family without its own MLM head gets one, tied
            from transformers.models.bert.modeling_bert import BertOnlyMLMHead

            backbone = student.encoder()
            head = BertOnlyMLMHead(backbone.config)
            with torch.no_grad():
                dim = backbone.config.hidden_size
                head.predictions.transform.dense.weight.copy_(torch.eye(dim))
                head.predictions.transform.dense.bias.zero_()
                head.predictions.bias.zero_()
            head.predictions.decoder.weight = backbone.get_input_embeddings().weight
            self.head = head.to(student.device)

    def forward(self, student, q_rep, d_rep, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], step: int):
        parts = {}
        if self.cfg.contrastive > 0:
            scores = student.score_all(q_rep, d_rep)
            parts["contrastive"] = self.cfg.contrastive * self.contrastive(scores, len(doc_ids[0]))
        if self.cfg.mlm > 0:
            parts["mlm"] = self.cfg.mlm * self._mlm(student, [self.doc_text(docs[0]) for docs in doc_ids])
        return sum(parts.values()), parts

    def _mlm(self, student, texts: Sequence[str]) -> torch.Tensor:
        tok = student.tokenizer
        enc = student.tokenize_cpu(texts, student.doc_max_len)  # on the CPU: the masks are drawn there
        special = torch.tensor([tok.get_special_tokens_mask(ids, already_has_special_tokens=True)
                                for ids in enc["input_ids"].tolist()], dtype=torch.bool) | (enc["attention_mask"] == 0)
        masked, labels = mask_tokens(enc["input_ids"], special, tok.mask_token_id, len(tok), self.cfg.mlm_probability,
                                     self.generator)
        device = student.device
        backbone = student.encoder()
        hidden = backbone(input_ids=masked.to(device), attention_mask=enc["attention_mask"].to(device)).last_hidden_state
        rows, row_labels = mlm_rows(labels.reshape(-1))
        head = self.head if self.head is not None else student.mlm_head()
        logits = head(hidden.reshape(-1, hidden.shape[-1])[rows.to(device)])
        return self.mlm_loss(logits, row_labels.to(device))



MLM_ROWS_MULTIPLE = 64


def mlm_rows(labels: torch.Tensor, multiple: int = MLM_ROWS_MULTIPLE) -> "tuple[torch.Tensor, torch.Tensor]":
    """(the flat positions the MLM head reads, their labels): the masked positions (label ≠ -100), padded up to a
    multiple of ``multiple`` with position 0 labelled -100 (read, never scored: the loss is unchanged). The head's
    output is vocabulary-wide (30,522 columns for MiniLM) and the number of masked positions differs every step;
    measured, 63 steps of the dense multi-task student peaked at 4,472 MB reading the exact rows and 3,583 MB
    reading blocks of 64, in the same 92 s (2,979 MB without MLM) — the shapes effect of
    :mod:`harness.students.shapes`."""
    picked = torch.nonzero(labels != -100, as_tuple=True)[0]
    extra = -len(picked) % multiple
    rows = torch.cat([picked, picked.new_zeros(extra)])
    return rows, torch.cat([labels[picked], labels.new_full((extra,), -100)])
