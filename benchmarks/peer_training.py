"""Training steps against the peer a user would pick instead: the harness's trainer vs sentence-transformers'
own trainer and losses on the same model, examples, batch, lengths and precision (floor: 1.0 of the peer's
throughput), for the dense and the SPLADE student.

* dense: ``SentenceTransformer`` (MiniLM: mean pooling, normalised) + ``MarginMSELoss`` through
  ``SentenceTransformerTrainer``, against the harness's dense student and Margin-MSE objective;
* SPLADE: ``SparseEncoder`` (``MLMTransformer`` + ``SpladePooling``, max of log(1 + ReLU)) +
  ``SpladeLoss(SparseMarginMSELoss, FLOPS on queries and passages)`` through ``SparseEncoderTrainer``, against the
  harness's SPLADE student and its FLOPS-regularised Margin-MSE.

    python benchmarks/peer_training.py [--family dense|splade|all] [--steps 20] [--batch 8] [--doc-len 128]

Both see the same examples in the same order (SciFact train: a query, its first relevant passage, one passage
drawn from the corpus; the teacher-free margin of the ``margin`` recipes as the target, unscaled on both sides:
the harness's ``target_scale`` is "none" here, as the peer has no such calibration), ``--batch`` examples a
step, passages cut at ``--doc-len`` tokens (queries at the harness's 32; sentence-transformers has one
``max_seq_length`` for both, set to ``--doc-len``: SciFact's claims are shorter than 32 tokens, so the inputs are
the same), AdamW at the recipe's learning rate with 10 % warm-up, gradient clipping at 1.0, bf16 autocast where
the CPU has it (sentence-transformers: ``bf16=True``), no checkpoints and no logging to disk. Each side's time
is one whole training call (setting up its data and optimiser included), the faster of ``--repeats`` (2),
the two sides taking turns.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import report, take_turns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="all", choices=["all", "dense", "splade"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--doc-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import torch

    from harness.data import open_dataset
    from harness.distill.targets import MarginTargets
    from harness.distill.trainer import Objective, train_student
    from harness.encoding import get_device, precision
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings

    try:
        import datasets  # noqa: F401  (sentence-transformers' trainer needs datasets and accelerate)
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"error: the peer needs sentence-transformers' training extras ({exc.name} missing): "
                         "pip install -e '.[bench]'")

    ds = open_dataset("beir/scifact/train")
    docs = ds.doc_store()
    ids = list(docs)
    rng = random.Random(0)
    examples = []
    for q, judged in ds.qrels.items():
        pos = [d for d, r in judged.items() if r > 0]
        if pos:
            examples.append((q, (pos[0], rng.choice(ids))))
    examples = examples[: args.steps * args.batch]
    text = lambda d: docs[d].contents(["title", "text"])  # noqa: E731
    device = get_device()
    bf16 = precision(device) == "bf16"
    backbone = resolve_model("minilm")
    for family in (["dense", "splade"] if args.family == "all" else [args.family]):
        # the peer's loss has no target scaling: the harness's is off too (no calibration pass before training)
        recipe = load_recipe(f"scifact/{family}-margin", [f"student.doc_max_len={args.doc_len}",
                                                           'distill.target_scale="none"']).recipe
        margin = recipe.distill.margin
        targets = MarginTargets(margin)
        lr = recipe.train.lr
        train = SimpleNamespace(epochs=1.0, max_steps=args.steps, batch_queries=args.batch, lr=lr,
                                warmup=0.1, weight_decay=0.01, checkpoint_every=0)

        def harness() -> float:
            torch.manual_seed(0)
            student = build_student(family, backbone, student_settings(recipe), [text(d) for d in ids[:64]]).to(device)
            objective = Objective(family, recipe.distill).to(device)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                train_student(student, examples, ds.queries, text, targets, objective, train, 0, Path(tmp),
                              Path(tmp) / "scratch")
                return time.perf_counter() - t0

        def peer() -> float:
            from datasets import Dataset

            torch.manual_seed(0)
            rows = {"query": [ds.queries[q] for q, _ in examples], "positive": [text(g[0]) for _, g in examples],
                    "negative": [text(g[1]) for _, g in examples], "label": [float(margin)] * len(examples)}
            data = Dataset.from_dict(rows)
            with tempfile.TemporaryDirectory() as tmp:
                common = dict(output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=args.steps,
                              learning_rate=lr, warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, bf16=bf16,
                              use_cpu=device.type == "cpu", seed=0, report_to=[], save_strategy="no",
                              logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
                if family == "dense":
                    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                                       SentenceTransformerTrainingArguments)
                    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

                    model = SentenceTransformer(str(backbone), device=str(device))
                    model.max_seq_length = args.doc_len
                    trainer = SentenceTransformerTrainer(model=model, train_dataset=data, loss=MarginMSELoss(model),
                                                         args=SentenceTransformerTrainingArguments(**common))
                else:
                    from sentence_transformers.sparse_encoder import (SparseEncoder, SparseEncoderTrainer,
                                                                      SparseEncoderTrainingArguments)
                    from sentence_transformers.sparse_encoder.losses import SparseMarginMSELoss, SpladeLoss
                    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

                    mlm = MLMTransformer(str(backbone), max_seq_length=args.doc_len)
                    model = SparseEncoder(modules=[mlm, SpladePooling("max", activation_function="log1p_relu")],
                                          device=str(device))
                    cfg = recipe.student.splade
                    loss = SpladeLoss(model, SparseMarginMSELoss(model), document_regularizer_weight=cfg.lambda_d,
                                      query_regularizer_weight=cfg.lambda_q)
                    trainer = SparseEncoderTrainer(model=model, train_dataset=data, loss=loss,
                                                   args=SparseEncoderTrainingArguments(**common))
                t0 = time.perf_counter()
                trainer.train()
                return time.perf_counter() - t0

        _, times = take_turns({"harness": harness, "peer": peer}, args.repeats)
        t_h, t_peer = min(times["harness"]), min(times["peer"])  # their own timings: building is not timed
        print(f"{family}: harness {args.steps / t_h:.3f} steps/s, sentence-transformers {args.steps / t_peer:.3f} "
              f"steps/s ({args.batch} examples a step, passages at {args.doc_len} tokens, "
              f"{'bf16' if bf16 else 'fp32'})", flush=True)
        report(f"peer-training-{family}", t_peer / t_h, 1.0, steps=args.steps, batch=args.batch,
               doc_max_len=args.doc_len, precision="bf16" if bf16 else "fp32",
               harness_steps_per_s=round(args.steps / t_h, 3), peer_steps_per_s=round(args.steps / t_peer, 3),
               peer="sentence-transformers " + __import__("sentence_transformers").__version__)


if __name__ == "__main__":
    main()
