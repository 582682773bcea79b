"""Fine-tune a cross-encoder teacher from a backbone on the training groups.

Each step takes ``groups_per_step`` training examples (a query, one of its positives, and its N hard
negatives from BM25) and minimises either

* ``softmax`` — the listwise cross-entropy of the positive among the group (Localized Contrastive
  Estimation; Gao, Dai & Callan, "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline",
  ECIR 2021):  L = −log( exp(s(q,p⁺)) / Σ_{p ∈ {p⁺} ∪ N(q)} exp(s(q,p)) ); or
* ``bce`` — binary cross-entropy with the positive up-weighted by N, so both classes weigh the same.

AdamW, linear warm-up then linear decay, gradient clipping at 1.0, seeded shuffling. The result is saved
as a Hugging Face ``AutoModelForSequenceClassification`` folder with its tokenizer (one logit).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Mapping, Sequence

from harness.data.dataset import Doc
from harness.distill.groups import Group
from harness.encoding import get_device, progress

log = logging.getLogger("harness")


def finetune_cross_encoder(backbone: Path, groups: Sequence[Group], queries: Mapping[str, str],
                           docs: Mapping[str, Doc], fields: Sequence[str], cfg, seed: int, out_dir: Path) -> dict:
    import torch
    from transformers import get_linear_schedule_with_warmup

    from harness.teachers.cross_encoder import load_cross_encoder

    torch.manual_seed(seed)
    tokenizer, model = load_cross_encoder(backbone, "teacher.finetune.backbone", allow_new_head=True)
    device = get_device()
    model.to(device).train()
    examples = [(g.qid, pos, g.negatives) for g in groups for pos in g.positives if g.negatives]
    if not examples:
        from harness.errors import DataError

        raise DataError("teacher.finetune: no training group has both a positive and a negative")
    rng = random.Random(seed)
    order: list[int] = []
    n_steps = max(1, math.ceil(len(examples) * cfg.epochs / cfg.groups_per_step))
    while len(order) < n_steps * cfg.groups_per_step:
        perm = list(range(len(examples)))
        rng.shuffle(perm)
        order.extend(perm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * n_steps), n_steps)
    history, t0 = [], time.perf_counter()
    with progress(n_steps, "fine-tune teacher", unit="step") as bar:
        for step in range(n_steps):
            batch = [examples[i] for i in order[step * cfg.groups_per_step:(step + 1) * cfg.groups_per_step]]
            q_texts, p_texts, sizes = [], [], []
            for qid, pos, negs in batch:
                ids = (pos, *negs)
                q_texts += [queries[qid]] * len(ids)
                p_texts += [docs[d].contents(fields) for d in ids]
                sizes.append(len(ids))
            enc = tokenizer(q_texts, p_texts, padding=True, truncation="only_second", max_length=cfg.max_len,
                            return_tensors="pt").to(device)
            logits = model(**enc).logits[:, 0]
            losses, start = [], 0
            for n in sizes:  # groups may differ in size when a query has few BM25 candidates
                s = logits[start:start + n]
                if cfg.loss == "softmax":
                    losses.append(-torch.log_softmax(s, dim=0)[0])
                else:
                    target = torch.zeros_like(s)
                    target[0] = 1.0
                    weight = torch.ones_like(s)
                    weight[0] = float(n - 1)
                    losses.append(torch.nn.functional.binary_cross_entropy_with_logits(s, target, weight=weight)
                                  * n / (2 * (n - 1)))
                start += n
            loss = torch.stack(losses).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            history.append({"step": step + 1, "loss": round(loss.item(), 5), "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update(1)
    seconds = time.perf_counter() - t0
    model.eval()
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    with open(out_dir / "train_log.jsonl", "w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")
    first = sum(h["loss"] for h in history[:10]) / min(10, len(history))
    last = sum(h["loss"] for h in history[-10:]) / min(10, len(history))
    log.info("teacher fine-tuned: %d steps, %d examples, %.0f s, loss %.3f -> %.3f", n_steps, len(examples),
             seconds, first, last)
    return {"steps": n_steps, "examples": len(examples), "seconds": round(seconds, 1),
            "loss_first10": round(first, 4), "loss_last10": round(last, 4), "device": str(device)}
