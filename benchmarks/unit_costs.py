"""Per-unit costs of the MS MARCO grid's stages on this machine (CPU, or the GPU when there is one), for
``docs/scale.md`` (``benchmarks/scale_report.py`` turns them into hours, disk and memory per stage).

    python benchmarks/unit_costs.py [--backbone bert-base] [--steps 3] [--docs 146] [--repeat 20]

The students are the MS MARCO recipes' (``recipes/msmarco/_{dense,splade,colbert}.toml``: their lengths,
batch of 32 queries × 8 passages, losses, index settings) on a backbone with bert-base-uncased's shape —
12 layers, 768 wide, its WordPiece vocabulary (the one all-MiniLM-L6-v2 ships) — and random weights: the
same arithmetic as the real checkpoint, which this machine cannot download (compute costs do not depend on
the weights; a sparse index's do — random weights activate most of the vocabulary — so ``--splade-student``
takes a trained SPLADE student whose sparsity the impact index's figures are measured with). On the CPU
pass ``--batch 8``: 32 queries × 8 passages of bert-base does not fit in 24 GiB for the backward pass. The teacher is a MiniLM-L6 cross-encoder at 256 tokens, the shape of
cross-encoder/ms-marco-MiniLM-L-6-v2. Passages are the MS MARCO sample's (real lengths), repeated.
Figures: answer-key pairs/s; training steps/s, peak accelerator memory and peak RAM per family; passages/s
encoded; PLAID bytes per token and build seconds per million tokens; Lucene impact and FAISS HNSW bytes
per 1k passages; query latency p50; peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import PeakRSS, report


def backbone(kind: str, folder: Path) -> Path:
    """A folder with a randomly initialised BERT of the given shape and MiniLM's (bert-base's) vocabulary."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from harness.models import minilm_path

    shape = {"bert-base": (768, 12, 12, 3072), "minilm": (384, 6, 12, 1536), "tiny": (32, 2, 2, 64)}[kind]
    hidden, layers, heads, inter = shape
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, max_position_embeddings=512)
    BertForMaskedLM(config).save_pretrained(folder)  # an MLM head for SPLADE; the others ignore it
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="bert-base", choices=["bert-base", "minilm", "tiny"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="queries per step (0 = the recipes' 32)")
    ap.add_argument("--docs", type=int, default=146, help="distinct sample passages")
    ap.add_argument("--repeat", type=int, default=20, help="the passages repeated this often for the indexes")
    ap.add_argument("--pairs", type=int, default=1024)
    ap.add_argument("--splade-student", type=Path, default=None,
                    help="a trained SPLADE student folder (e.g. RUNS/_shared/student-splade-*/model): the impact "
                         "index's figures (terms a passage, size, build time, latency) are measured with its "
                         "sparsity; random weights activate most of the vocabulary (~23,000 terms a passage), "
                         "which says nothing about a trained model's index")
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import torch

    from harness.data import open_dataset
    from harness.distill.targets import MarginTargets
    from harness.distill.trainer import Objective, train_student
    from harness.encoding import get_device
    from harness.index.students import index_corpus, search_corpus
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.students import build_student, student_settings
    from harness.teachers.cross_encoder import CrossEncoderScorer, load_cross_encoder

    device = get_device()
    ds = open_dataset("msmarco-sample/train")
    texts = [d.contents(["text"]) for d in ds.docs()][: args.docs]
    queries = list(ds.queries.values()) or [t[:60] for t in texts]
    figures: dict = {"device": str(device), "backbone": args.backbone}
    rng = random.Random(0)

    # the teacher: MiniLM-L6 cross-encoder pairs/s at 256 tokens, batch 256 (teacher-msmarco.toml)
    tok, model = load_cross_encoder(resolve_model("minilm"), allow_new_head=True)
    scorer = CrossEncoderScorer(tok, model, 256, 256, device)
    pairs = [(rng.choice(queries), rng.choice(texts)) for _ in range(args.pairs)]
    scorer.score_texts([q for q, _ in pairs[:64]], [p for _, p in pairs[:64]])
    t0 = time.perf_counter()
    with PeakRSS() as ram:
        scorer.score_texts([q for q, _ in pairs], [p for _, p in pairs])
    figures["teacher_pairs_per_s"] = round(len(pairs) / (time.perf_counter() - t0), 1)
    figures["teacher_ram_bytes"] = ram.bytes
    del model, scorer

    with tempfile.TemporaryDirectory() as tmp:
        path = backbone(args.backbone, Path(tmp) / "backbone")
        corpus = [(f"p{i}", texts[i % len(texts)]) for i in range(len(texts) * args.repeat)]
        for family in ("dense", "splade", "colbert"):
            recipe = load_recipe(f"msmarco/{family}-static", [f"student.model={path}"]).recipe
            batch = args.batch or recipe.train.batch_queries
            group = 1 + recipe.negatives.count
            student = build_student(family, path, student_settings(recipe), texts[:64]).to(device)
            examples = [(f"q{i}", tuple(f"p{(i * group + j) % len(texts)}" for j in range(group)))
                        for i in range(batch * args.steps)]
            qtext = {f"q{i}": queries[i % len(queries)] for i in range(len(examples))}
            train = SimpleNamespace(epochs=1.0, max_steps=args.steps, batch_queries=batch, lr=recipe.train.lr,
                                    warmup=0.0, weight_decay=0.01, checkpoint_every=0)
            distill = SimpleNamespace(**{**vars(recipe.distill), "variant": "margin", "target_scale": "none"})
            objective = Objective(family, distill).to(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with tempfile.TemporaryDirectory() as work, PeakRSS() as train_ram:
                info = train_student(student, examples, qtext, lambda d: texts[int(d[1:]) % len(texts)],
                                     MarginTargets(1.0), objective, train, 0, Path(work), Path(work) / "s")
            f = {"train_steps_per_s": round(args.steps / info["train_seconds"], 4) if info["train_seconds"] else None,
                 "batch_queries": batch, "group": group, "doc_max_len": recipe.student.doc_max_len,
                 "train_ram_bytes": train_ram.bytes}
            if device.type == "cuda":
                f["train_peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
            indexer = student
            if family == "splade" and args.splade_student is not None:
                from harness.students import load_student

                sample = texts[: min(len(texts), 512)]  # the encoding rate is the bert-base student's
                student.infer_docs(sample[:32], recipe.student.doc_max_len)
                t0 = time.perf_counter()
                student.infer_docs(sample, recipe.student.doc_max_len)
                f["encode_docs_per_s"] = round(len(sample) / (time.perf_counter() - t0), 1)
                indexer = load_student(args.splade_student).to(device)
                f["index_sparsity_from"] = str(args.splade_student)
            elif family == "splade":
                f["index_sparsity_from"] = "random weights (not representative of a trained model)"
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                with PeakRSS() as index_ram:
                    built = index_corpus(family, indexer, iter(corpus), Path(work), recipe.index, None, True)
                f["index_ram_bytes"] = index_ram.bytes  # encoding + build, streamed: the peak at this corpus size
                f.setdefault("encode_docs_per_s", built["docs_per_second"])
                f["indexed_passages"] = len(corpus)
                f["index_build_seconds"] = round(time.perf_counter() - t0 - built["encode_seconds"], 2)
                size = sum(p.stat().st_size for p in Path(work).rglob("*") if p.is_file())
                f["stage_bytes_per_1k_passages"] = round(size / len(corpus) * 1000)
                if family == "colbert":
                    f["tokens_per_passage"] = built["avg_doc_tokens"]
                    f["plaid_bytes_per_token"] = round(built.get("bytes_per_token", 0), 2)
                    f["plaid_build_seconds_per_1m_tokens"] = round(
                        built.get("index_seconds", 0) / max(built["tokens"], 1) * 1e6, 1)
                if family == "splade":
                    f["avg_doc_terms"] = built["avg_doc_terms"]
                    f["impact_index_bytes_per_1k_passages"] = round(built["index_bytes"] / len(corpus) * 1000)
                if family == "dense":
                    f["faiss_bytes_per_1k_passages"] = round(built["index_bytes"] / len(corpus) * 1000)
                qs = {f"q{i}": q for i, q in enumerate(queries[:20])}
                _, _, found = search_corpus(family, indexer, Path(work), qs, 100, recipe.index, False, None, True)
                f["latency_ms_p50"] = found.get("latency_ms_p50")
            figures[family] = f
            print(family, f, flush=True)
            del student, objective, indexer
    figures["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    report(f"unit-costs-{device.type}", figures["teacher_pairs_per_s"], 0.0, **figures)


if __name__ == "__main__":
    main()
