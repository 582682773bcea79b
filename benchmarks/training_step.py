"""Training steps: the harness's trainer (``train_student``: seeded order, schedule, clipping, logging,
checkpoints) against a plain forward + backward + fused AdamW loop over the same student, batches, loss
(Margin-MSE towards a constant margin, the teacher-free variant) and precision (floor: 0.9 of the
throughput), per family.

    python benchmarks/training_step.py [--family dense|splade|colbert|all] [--steps 20] [--batch 8]

Both see the same examples (SciFact train: a query, its positive, 3 BM25-free negatives drawn from the
corpus) in the same order; checkpoints are off in both (``checkpoint_every = 0``).
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
    ap.add_argument("--family", default="all", choices=["all", "dense", "splade", "colbert"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--doc-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import torch

    from harness.data import open_dataset
    from harness.distill.targets import MarginTargets
    from harness.distill.trainer import Objective, train_student
    from harness.encoding import autocast, get_device
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings

    ds = open_dataset("beir/scifact/train")
    docs = ds.doc_store()
    ids = list(docs)
    rng = random.Random(0)
    examples = []
    for q, judged in ds.qrels.items():
        pos = [d for d, r in judged.items() if r > 0]
        if pos:
            examples.append((q, (pos[0], *rng.sample(ids, args.negatives))))
    examples = examples[: args.steps * args.batch]
    text = lambda d: docs[d].contents(["title", "text"])  # noqa: E731
    device = get_device()
    for family in (["dense", "splade", "colbert"] if args.family == "all" else [args.family]):
        recipe = load_recipe(f"scifact/{family}-margin", [f"student.doc_max_len={args.doc_len}"]).recipe
        targets = MarginTargets(recipe.distill.margin)
        train = SimpleNamespace(epochs=1.0, max_steps=args.steps, batch_queries=args.batch, lr=recipe.train.lr,
                                warmup=0.1, weight_decay=0.01, checkpoint_every=0)

        def fresh():
            torch.manual_seed(0)
            s = build_student(family, resolve_model("minilm"), student_settings(recipe),
                              [text(d) for d in ids[:64]]).to(device)
            return s, Objective(family, recipe.distill).to(device)

        def harness() -> float:
            student, objective = fresh()
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                train_student(student, examples, ds.queries, text, targets, objective, train, 0, Path(tmp),
                              Path(tmp) / "scratch")
                return time.perf_counter() - t0

        def plain() -> float:
            student, objective = fresh()
            t0 = time.perf_counter()
            student.train()
            opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=train.lr,
                                    weight_decay=0.01, fused=True)  # the harness's optimiser: the same update
            for step in range(args.steps):
                batch = examples[step * args.batch:(step + 1) * args.batch]
                qids, groups = [q for q, _ in batch], [g for _, g in batch]
                with autocast(device):
                    q = student.encode_queries([ds.queries[x] for x in qids])
                    d = student.encode_docs([text(x) for g in groups for x in g])
                    s = student.score_groups(q, d).float()
                loss, _ = objective(q, d, s, targets(qids, groups, ds.queries, s.device), step)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        _, times = take_turns({"plain": plain, "harness": harness}, args.repeats)
        t_plain, t_h = min(times["plain"]), min(times["harness"])  # their own timings: building is not timed
        report(f"training-step-{family}", t_plain / t_h, 0.9, steps=args.steps, batch_queries=args.batch,
               group=1 + args.negatives, doc_max_len=args.doc_len, plain_steps_per_s=round(args.steps / t_plain, 3),
               harness_steps_per_s=round(args.steps / t_h, 3))


if __name__ == "__main__":
    main()
