"""CPU inference tricks for corpus encoding, each against the harness's own encoding (eager PyTorch, bf16
autocast where the CPU has native bfloat16, else fp32), on the same student, passages and lengths:

* ``compile``   — ``torch.compile`` of the encoder (dynamic shapes), same precision as the harness;
* ``int8``      — ``torch.ao.quantization.quantize_dynamic`` of the encoder's ``nn.Linear`` layers (int8
                  weights, dynamic int8 activations; the student runs in fp32 around them);
* ``ort``       — the encoder exported to ONNX and run by ONNX Runtime (CPU execution provider, fp32 inside;
                  what follows the transformer — pooling, projection, SPLADE's vocabulary head — stays in
                  PyTorch at the harness's precision);
* ``ort-int8``  — that ONNX model through ``onnxruntime.quantization.quantize_dynamic`` (int8 weights).

    python benchmarks/cpu_inference.py [--runs RUNS] [--families dense,splade,colbert] [--docs 2000]
                                       [--variants compile,int8,ort,ort-int8]

The student of each family is the shipped static one (``RUNS/scifact-<family>-static``, a finished suite run),
or the untrained one without ``--runs``. Its quality is judged on the **dev split** (``beir/scifact/train[dev]``,
the queries the suite carves from SciFact train and never trains on) over a corpus slice of ``--docs``
passages (every passage judged for a dev query, then the corpus in order): exact search, nDCG@10 with
ir_measures, overlap@10 with the harness's own encoding. Encoding is timed over the whole slice (after a
warm-up that also pays for compilation / export, reported apart).

A trick is **adopted only if it is faster at equal nDCG@10 (± 0.002)**: the verdict per family and variant is
printed, and the ratio is the best adoptable speed-up (1.0 when none is adoptable: the harness's own encoding
stays).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import report

VARIANTS = ("compile", "int8", "ort", "ort-int8")


def holder(student, module) -> "tuple[object, str]":
    """(parent module, attribute) holding ``module`` in the student: the transformer a trick replaces
    (``student.encoder()``: the backbone; for SPLADE the MLM model's base, its vocabulary head stays)."""
    for parent in student.modules():
        for name, child in parent.named_children():
            if child is module:
                return parent, name
    raise LookupError("the student's encoder is not one of its modules")


@contextlib.contextmanager
def precision_env(value: "str | None"):
    saved = os.environ.get("HARNESS_PRECISION")
    if value:
        os.environ["HARNESS_PRECISION"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HARNESS_PRECISION", None)
        else:
            os.environ["HARNESS_PRECISION"] = saved


class OrtEncoder:
    """An ONNX Runtime session called like the transformers module it replaces."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids, attention_mask, token_type_ids=None, **_):
        import torch

        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        if "token_type_ids" in self.names:
            feeds["token_type_ids"] = (token_type_ids if token_type_ids is not None
                                       else torch.zeros_like(input_ids)).numpy()
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        return SimpleNamespace(last_hidden_state=out)


def export_onnx(module, tokenizer, out: Path, quantize: bool) -> Path:
    """The encoder as ONNX (batch and sequence axes dynamic), optionally int8-quantised by ONNX Runtime."""
    import torch

    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    enc = tokenizer(["an example passage", "a second, longer example passage for the export"], padding=True,
                    return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])))
    path = out / "encoder.onnx"
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    with torch.no_grad():
        torch.onnx.export(Plain(module).eval(), args, str(path), input_names=list(axes)[:3], output_names=["out"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    if not quantize:
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    qpath = out / "encoder-int8.onnx"
    quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
    return qpath


def apply(variant: str, student, scratch: Path) -> "tuple[str | None, float]":
    """Put ``variant`` in place on ``student`` (in place); (the precision it runs at, seconds it took)."""
    import torch

    module = student.encoder()
    owner, name = holder(student, module)
    t0 = time.perf_counter()
    precision = None
    if variant == "compile":
        setattr(owner, name, torch.compile(module, dynamic=True))
    elif variant == "int8":  # quantised linears take fp32 activations: the whole student runs in fp32
        setattr(owner, name, torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8))
        precision = "fp32"
    elif variant in ("ort", "ort-int8"):
        path = export_onnx(module, student.tokenizer, scratch, quantize=variant == "ort-int8")
        wrapper = OrtEncoder(path, torch.get_num_threads())
        owner, name = holder(student, module)
        owner._modules.pop(name)  # not an nn.Module: set it past torch's registration
        object.__setattr__(owner, name, wrapper)
        student.add_module("replaced_encoder", module)  # kept registered: the student still has a device
    return precision, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=None, help="a finished suite's runs folder (the shipped students)")
    ap.add_argument("--families", default="dense,splade,colbert")
    ap.add_argument("--docs", type=int, default=2000, help="corpus slice (every judged passage, then the corpus)")
    ap.add_argument("--max-queries", type=int, default=0, help="dev queries (0 = all)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tolerance", type=float, default=0.002, help="'equal nDCG@10': within this of the harness's")
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import torch

    from harness.data import DatasetSlice, open_dataset
    from harness.data.dataset import dev_split
    from harness.encoding import get_device, precision
    from harness.evaluate.measures import evaluate
    from harness.index.base import overlap_at_k
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.registry import INDEXES
    from harness.students import build_student, eval_lengths, load_student, student_settings

    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"error: --variants: unknown {sorted(unknown)}; expected some of {', '.join(VARIANTS)}")
    rows, verdicts = [], {}
    for family in [f for f in args.families.split(",") if f]:
        recipe = load_recipe(f"scifact/{family}-static").recipe
        train = recipe.train
        dev = dev_split(open_dataset(train.dataset), train.dev_fraction, train.dev_max_queries)[1]
        ds = DatasetSlice(dev, max_queries=args.max_queries, max_docs=args.docs)
        docs = list(ds.docs())
        texts = [d.contents(["title", "text"]) for d in docs]
        qids = list(ds.queries)
        source = "untrained"
        if args.runs is not None:
            manifest = json.loads((args.runs / f"scifact-{family}-static" / "manifest.json").read_text())
            student_dir = Path(next(s["dir"] for s in manifest["stages"] if s["name"] == f"student-{family}"))
            source = str(student_dir.name)

        def fresh():
            if args.runs is not None:
                return load_student(student_dir / "model").to(get_device())
            return build_student(family, resolve_model(recipe.student.model), student_settings(recipe),
                                 texts[:64]).to(get_device())

        q_len, d_len = eval_lengths(recipe)
        print(f"{family} ({source}): {len(qids)} dev queries, {len(texts)} passages, passages at {d_len} tokens, "
              f"queries at {q_len}; torch threads {torch.get_num_threads()}", flush=True)
        base_run, base = None, None
        for variant in ["harness", *variants]:
            student = fresh()
            student.eval()
            with tempfile.TemporaryDirectory() as scratch:
                try:
                    prec, setup_s = apply(variant, student, Path(scratch)) if variant != "harness" else (None, 0.0)
                    with precision_env(prec):
                        t0 = time.perf_counter()
                        student.infer_docs(texts[:64], d_len)  # warm-up (compilation happens here)
                        warm_s = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        d_reps = student.infer_docs(texts, d_len)
                        enc_s = time.perf_counter() - t0
                        q_reps = student.infer_queries([ds.queries[q] for q in qids], q_len)
                        used = precision(get_device())
                except Exception as exc:  # a trick that does not apply to this model is a finding, not a crash
                    print(f"  {variant:>9}: failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}", flush=True)
                    rows.append({"family": family, "variant": variant, "error": f"{type(exc).__name__}: {exc}"[:300]})
                    continue
            hits = INDEXES[family].exhaustive(q_reps, d_reps, 100)
            run = {q: [(docs[i].doc_id, float(s)) for i, s in h] for q, h in zip(qids, hits)}
            scores, _ = evaluate(run, ds.qrels, ["nDCG@10"])
            row = {"family": family, "variant": variant, "precision": used, "docs_per_s": round(len(texts) / enc_s, 1),
                   "setup_s": round(setup_s, 1), "warmup_s": round(warm_s, 1), "nDCG@10": round(scores["nDCG@10"], 4)}
            if variant == "harness":
                base_run, base = run, row
            else:
                row["speedup"] = round(row["docs_per_s"] / base["docs_per_s"], 3)
                row["delta_nDCG@10"] = round(row["nDCG@10"] - base["nDCG@10"], 4)
                row["overlap@10"] = round(overlap_at_k(run, base_run, 10), 3)
                row["adopt"] = row["speedup"] > 1.0 and abs(row["delta_nDCG@10"]) <= args.tolerance
                verdicts[f"{family}/{variant}"] = row["adopt"]
            rows.append(row)
            extra = "" if variant == "harness" else (
                f"  ×{row['speedup']:.2f}  ΔnDCG {row['delta_nDCG@10']:+.4f}  ovl@10 {row['overlap@10']:.3f}  "
                f"{'ADOPT' if row['adopt'] else 'no'}")
            print(f"  {variant:>9} ({used}): {row['docs_per_s']:7.1f} passages/s (setup {row['setup_s']} s, warm-up "
                  f"{row['warmup_s']} s)  nDCG@10 {row['nDCG@10']:.4f}{extra}", flush=True)
            del student
    adoptable = [r["speedup"] for r in rows if r.get("adopt")]
    print("adopted:", ", ".join(k for k, v in verdicts.items() if v) or "none (the harness's own encoding stays)")
    report("cpu-inference", max(adoptable, default=1.0), 1.0, rows=rows, tolerance=args.tolerance,
           dataset="beir/scifact/train[dev]", docs=args.docs)


if __name__ == "__main__":
    main()
