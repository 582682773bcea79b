"""Corpus encoding: the harness's ``infer_docs`` (length-sorted batches, the family's representation, what
the index needs) against a plain batched forward of the same model, same texts, lengths and precision
(floor: 0.95 of the throughput), per family.

    python benchmarks/encoding.py [--family dense|splade|colbert|all] [--docs 2000] [--max-len 256]

"Plain" is the loop a user would write with transformers: tokenize the texts in input order, forward under
inference_mode (and the same bf16 autocast where the machine has it), pool — mean + normalise (dense),
max over tokens of log(1 + ReLU(logits)) kept as (term, weight) pairs (SPLADE), a 128-d projection +
normalise kept per token (ColBERT).
"""

from __future__ import annotations

import argparse
import os

from _common import best_of, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="all", choices=["all", "dense", "splade", "colbert"])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import torch

    from harness.data import open_dataset
    from harness.encoding import autocast, get_device, precision
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings

    ds = open_dataset("beir/scifact/test", max_docs=args.docs)
    texts = [d.contents(["title", "text"]) for d in ds.docs()][: args.docs]
    device = get_device()
    for family in (["dense", "splade", "colbert"] if args.family == "all" else [args.family]):
        recipe = load_recipe(f"scifact/{family}-untrained", [f"student.batch_size={args.batch_size}"]).recipe
        student = build_student(family, resolve_model("minilm"), student_settings(recipe), texts[:64]).to(device)
        student.eval()
        tok = student.tokenizer
        prefix = "[D] " if family == "colbert" else ""

        def plain():
            out = []
            with torch.inference_mode(), autocast(device):
                for s in range(0, len(texts), args.batch_size):
                    enc = tok([prefix + t for t in texts[s:s + args.batch_size]], padding=True, truncation=True,
                              max_length=args.max_len, return_tensors="pt").to(device)
                    mask = enc["attention_mask"]
                    if family == "dense":
                        h = student.backbone(**enc).last_hidden_state
                        m = mask.unsqueeze(-1).to(h.dtype)
                        e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
                        out.extend(e.float().cpu().numpy())
                    elif family == "splade":
                        logits = student.mlm(**enc).logits
                        w = torch.log1p(torch.relu(logits.masked_fill(mask.unsqueeze(-1) == 0, 0).max(1).values))
                        for row in w.float().cpu():
                            idx = torch.nonzero(row, as_tuple=True)[0]
                            out.append(dict(zip(idx.tolist(), row[idx].tolist())))
                    else:
                        h = torch.nn.functional.normalize(student.projection(student.backbone(**enc).last_hidden_state),
                                                          dim=-1).float().cpu()
                        out.extend(v[m.bool()].numpy() for v, m in zip(h, mask.cpu()))
            return out

        def harness():
            return student.infer_docs(texts, args.max_len)

        plain()  # warm-up
        t_plain, _ = best_of(plain, args.repeats)
        t_h, reps = best_of(harness, args.repeats)
        assert len(reps) == len(texts)
        report(f"encoding-{family}", t_plain / t_h, 0.95, docs=len(texts), max_len=args.max_len,
               batch_size=args.batch_size, plain_docs_per_s=round(len(texts) / t_plain, 1),
               harness_docs_per_s=round(len(texts) / t_h, 1), precision=precision(device))


if __name__ == "__main__":
    main()
