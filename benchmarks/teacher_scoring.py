"""Teacher scoring throughput: the harness's scorer vs a raw batched forward of the same model, same pairs.

    python benchmarks/teacher_scoring.py [--model minilm] [--pairs 2048] [--batch-size 64] [--max-len 256]

The pairs are real (SciFact train queries × BM25 top-30 passages, from $HARNESS_DATA_DIR). "raw" is the
plain loop a user would write: tokenize a batch in input order, forward under inference_mode (and the same
bf16 autocast as the harness where the machine has it: same precision). The harness
adds length-sorted batching and bookkeeping. Prints pairs/s for both, their ratio (goal ≥ 0.9), and the
largest score difference between the two (they must agree).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, take_turns  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm", help="cross-encoder (or backbone: speed is the same)")
    ap.add_argument("--pairs", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import numpy as np
    import torch

    from harness.data import open_dataset
    from harness.encoding import autocast, precision
    from harness.index.lucene import bm25_search, build_bm25_index
    from harness.models import resolve_model
    from harness.teachers.cross_encoder import CrossEncoderScorer, load_cross_encoder

    ds = open_dataset("beir/scifact/train")
    docs = ds.doc_store()
    index = Path(os.environ.get("TMPDIR", "/tmp")) / "harness-bench-index"
    if not (index / "index").exists():
        build_bm25_index(ds.docs(), ["title", "text"], index / "index")
    run = bm25_search(index / "index", ds.queries, k=30, k1=0.9, b=0.4)
    pairs = [(ds.queries[q], docs[d].contents()) for q, hits in run.items() for d, _ in hits][: args.pairs]
    queries, passages = [p[0] for p in pairs], [p[1] for p in pairs]

    tokenizer, model = load_cross_encoder(resolve_model(args.model), allow_new_head=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scorer = CrossEncoderScorer(tokenizer, model, args.max_len, args.batch_size, device)

    def raw() -> np.ndarray:
        out = []
        with torch.inference_mode(), autocast(device):  # the harness's precision (bf16 where the CPU has it)
            for s in range(0, len(pairs), args.batch_size):
                enc = tokenizer(queries[s:s + args.batch_size], passages[s:s + args.batch_size], padding=True,
                                truncation="only_second", max_length=args.max_len, return_tensors="pt").to(device)
                out.append(model(**enc).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out)

    def harness() -> np.ndarray:
        return scorer.score_texts(queries, passages)

    raw()  # warm-up (allocations, kernels)
    best, scores = take_turns({"raw": raw, "harness": harness}, args.repeats)
    results = {name: got[-1] for name, got in scores.items()}
    rate = {k: len(pairs) / v for k, v in best.items()}
    diff = float(np.max(np.abs(results["raw"] - results["harness"])))
    print(f"device {device}, threads {torch.get_num_threads()}, {len(pairs)} pairs, batch {args.batch_size}, "
          f"max_len {args.max_len}, model {args.model}, precision {precision(device)}")
    print(f"raw forward      {rate['raw']:8.1f} pairs/s")
    print(f"harness scorer   {rate['harness']:8.1f} pairs/s")
    report("teacher-scoring", rate["harness"] / rate["raw"], 0.9, pairs=len(pairs), batch_size=args.batch_size,
           max_len=args.max_len, precision=precision(device), raw_pairs_per_s=round(rate["raw"], 1), harness_pairs_per_s=round(rate["harness"], 1),
           max_score_diff=float(f"{diff:.2e}"))


if __name__ == "__main__":
    main()
