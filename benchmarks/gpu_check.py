# GPU run (repo root on the GPU machine, after `bash benchmarks/gpu_prep.sh` here and with .gpu/ carried over):
# (the device tool: carry [".gpu"]; expected ~1-2 min on an H100, so timeout_s 420 leaves room for a rerun)
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD HARNESS_DATA_DIR=$PWD/.gpu/data PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_check.py --model .gpu/minilm --out $OUT/gpu_check.json
# CPU smoke run (here, a minute or so):
#   HARNESS_DATA_DIR=$PWD/.gpu/data python benchmarks/gpu_check.py --model .gpu/minilm --device cpu --steps 3 \
#       --max-docs 300 --max-queries 20 --out /tmp/gpu_smoke.json
"""One prepared device check of the harness on SciFact: teacher scoring, student training, encoding, retrieval.

    python benchmarks/gpu_check.py [--model minilm] [--device cuda] [--steps 50] [--max-docs 0]
                                   [--max-queries 0] [--out gpu_check.json]

Everything runs through the harness's own code, at the precision it picks (bf16 autocast on CUDA):

1. Teacher scoring: the bi-encoder teacher (``BiEncoderTeacher``) and the cross-encoder scorer
   (``CrossEncoderScorer``, MiniLM with a fresh one-logit head: same speed as a trained one) against a
   plain batched transformers loop over the same pairs (input order, same precision): pairs/s, ratio
   harness/raw, and the largest score difference. Pairs: SciFact train queries × (their qrels positives +
   ``--negatives`` random corpus passages), deterministic (seeded per query).
2. For each student family (colbert, splade, dense), built by ``build_student`` from ``--model`` with the
   settings of the shipped recipe ``scifact/<family>-static``:
   a. ``--steps`` steps of ``train_student`` with the recipe's ``Objective`` (its loss, target scale,
      FLOPS for SPLADE), targets from a static answer key = the bi-encoder teacher's scores of
      (query, positive, first 3 random negatives) from part 1;
   b. corpus encoding (``Student.infer_docs``) vs a plain transformers loop over the same backbone and
      head on the same passages (input order, same precision): docs/s and ratio;
   c. exact retrieval on SciFact test (MaxSim / sparse dot / dense dot, the harness's exact search
      functions), nDCG@10 and R@100 through ``harness.evaluate`` (ir_measures);
   d. ColBERT only: a PLAID index through fast-plaid (``build_plaid`` / ``PlaidSearcher``) on the device:
      build seconds, per-query latency p50/p95, overlap@10 with exact MaxSim, nDCG@10.

Needs neither Pyserini/Java nor FAISS nor ir_datasets: the dataset is opened by path (a BEIR folder in
$HARNESS_DATA_DIR), SPLADE uses the exact sparse search (scipy) instead of the Lucene impact index, and the
dense student the exact numpy search instead of FAISS. fast-plaid imports usearch (only for in-place index
updates, which the harness never makes); where usearch is missing a stub stands in for it.

Results are printed as a table and written, section by section, to ``--out`` as JSON. The exit status is 1
when a section failed or a check did not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAMILIES = ("colbert", "splade", "dense")
MEASURES = ["nDCG@10", "R@100"]
DEPTH = 100


# ---- small helpers ----------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def jsonable(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


class Report:
    """The JSON result, rewritten after every section so a run cut short still leaves what it measured."""

    def __init__(self, path: "str | None"):
        self.path = Path(path) if path else None
        self.data: dict = {"errors": [], "checks": {}}
        self.t0 = time.perf_counter()

    def save(self) -> None:
        self.data["elapsed_seconds"] = round(time.perf_counter() - self.t0, 2)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(jsonable(self.data), indent=2) + "\n")
        os.replace(tmp, self.path)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.data["checks"][name] = {"ok": bool(ok), "detail": detail}
        if not ok:
            log(f"CHECK FAILED: {name}: {detail}")

    @contextlib.contextmanager
    def section(self, name: str):
        t0 = time.perf_counter()
        log(f"--- {name}")
        try:
            yield
        except Exception as exc:  # one failing section must not hide the others' figures
            tb = traceback.format_exc()
            self.data["errors"].append({"section": name, "error": f"{type(exc).__name__}: {exc}",
                                        "traceback": tb[-4000:]})
            log(f"ERROR in {name}: {type(exc).__name__}: {exc}\n{tb[-2000:]}")
        finally:
            log(f"    {name}: {time.perf_counter() - t0:.1f} s")
            self.save()


def best_of(fns: dict, repeats: int, sync) -> tuple[dict, dict]:
    """Run each callable ``repeats`` times, interleaved; (best seconds, last result) per name."""
    best = {k: float("inf") for k in fns}
    out = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            out[name] = fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


def ensure_usearch() -> bool:
    """fast-plaid imports ``usearch.index.Index`` at import time but uses it only to update an index in place
    (never done here). Where usearch (and its native numkong) is not installed, a stub stands in. True when
    the stub was installed."""
    try:
        import usearch.index  # noqa: F401

        return False
    except Exception:
        for name in [m for m in sys.modules if m == "usearch" or m.startswith("usearch.")]:
            del sys.modules[name]
        pkg = types.ModuleType("usearch")
        pkg.__path__ = []  # a package, so `usearch.index` resolves to the stub below
        mod = types.ModuleType("usearch.index")

        class Index:  # noqa: D401 - a placeholder
            def __init__(self, *a, **k):
                raise RuntimeError("usearch is not installed (stub from benchmarks/gpu_check.py)")

        mod.Index = Index
        pkg.index = mod
        sys.modules["usearch"], sys.modules["usearch.index"] = pkg, mod
        return True


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            line = next((x for x in fh if x.startswith("model name")), "")
        return line.split(":", 1)[1].strip() if ":" in line else (platform.processor() or "cpu")
    except OSError:
        return platform.processor() or "cpu"


def version(dist: str) -> "str | None":
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---- main -------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm", help="backbone of teacher and students: a folder, or minilm")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu (default cuda)")
    ap.add_argument("--steps", type=int, default=50, help="training steps per student family")
    ap.add_argument("--max-docs", type=int, default=0, help="corpus slice: judged passages, then the corpus in "
                                                            "order (0 = all 5,183)")
    ap.add_argument("--max-queries", type=int, default=0, help="first N train and N test queries (0 = all)")
    ap.add_argument("--negatives", type=int, default=7, help="random passages per train query in part 1 "
                                                             "(training uses the first 3, as the recipes)")
    ap.add_argument("--repeats", type=int, default=0, help="timed repeats of each throughput measurement, the "
                                                           "best counts (default: 2 on CUDA, 1 on CPU)")
    ap.add_argument("--latency-queries", type=int, default=100, help="PLAID queries timed one at a time")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated student families")
    ap.add_argument("--dataset", default="scifact", help="BEIR folder name under $HARNESS_DATA_DIR")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None, help="write all figures as JSON to this file")
    args = ap.parse_args()

    os.environ["HARNESS_DEVICE"] = args.device  # the harness's own device choice (get_device, PLAID, exact search)
    os.environ.setdefault("HARNESS_PROGRESS", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_start = time.perf_counter()

    import numpy as np
    import torch

    rep = Report(args.out)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        ap.error(f"unknown families {bad}; choose from {FAMILIES}")
    device = torch.device(args.device)
    args.repeats = args.repeats or (2 if device.type == "cuda" else 1)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (use --device cpu for a smoke run)",
              file=sys.stderr)
        return 2

    from harness.data import open_dataset
    from harness.data.resolve import data_dirs
    from harness.distill.groups import Group
    from harness.encoding import autocast, precision
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.teachers.base import Request

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def free() -> None:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    model_path = resolve_model(args.model, "--model")
    usearch_stub = ensure_usearch()
    rep.data["meta"] = {
        "args": vars(args), "model_path": str(model_path), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "precision": precision(device), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "transformers": version("transformers"), "fast_plaid": version("fast-plaid"),
        "ir_measures": version("ir-measures"), "usearch_stub": usearch_stub, "threads": torch.get_num_threads(),
        "blocked": {m: m in sys.modules and sys.modules[m] is None for m in ("pyserini", "faiss", "ir_datasets")},
    }
    log(f"device {device} ({rep.data['meta']['device_name']}), precision {precision(device)}, torch "
        f"{torch.__version__}, transformers {version('transformers')}, model {model_path}")

    # ---- data -----------------------------------------------------------------------------------------
    folder = next((root / args.dataset for root in data_dirs() if (root / args.dataset / "corpus.jsonl").is_file()),
                  None)
    if folder is None:
        print(f"no {args.dataset}/corpus.jsonl in HARNESS_DATA_DIR={os.environ.get('HARNESS_DATA_DIR')!r}",
              file=sys.stderr)
        return 2
    folder = folder.resolve()  # an absolute path: open_dataset reads it as a BEIR folder, never ir_datasets
    recipes = {f: load_recipe(f"scifact/{f}-static").recipe for f in FAMILIES}
    base = recipes["colbert"]
    fields = list(base.data.doc_fields)
    test = open_dataset(f"{folder}#test", max_queries=args.max_queries, max_docs=args.max_docs)
    train = open_dataset(f"{folder}#train", max_queries=args.max_queries)
    store = train.doc_store()  # every passage by id (the full corpus: train positives may lie outside the slice)
    corpus = list(test.docs())
    doc_ids = [d.doc_id for d in corpus]
    texts = [d.contents(fields) for d in corpus]

    def doc_text(pid: str) -> str:
        return store[pid].contents(fields)

    groups: list[Group] = []
    for qid, judged in train.qrels.items():
        positives = tuple(d for d, rel in judged.items() if rel > 0 and d in store)
        if not positives or qid not in train.queries:
            continue
        pool = [d for d in doc_ids if d not in judged]
        negatives = tuple(random.Random(f"{args.seed}:{qid}").sample(pool, min(args.negatives, len(pool))))
        groups.append(Group(qid, positives, negatives))
    requests = [Request(g.qid, train.queries[g.qid], g.doc_ids) for g in groups]
    n_pairs = sum(len(r.doc_ids) for r in requests)
    rep.data["data"] = {"folder": str(folder), "corpus_docs": len(corpus), "test_queries": len(test.queries),
                        "train_queries": len(groups), "teacher_pairs": n_pairs, "fields": fields}
    log(f"data: {len(corpus)} passages, {len(test.queries)} test queries, {len(groups)} train queries, "
        f"{n_pairs} teacher pairs")
    rep.save()

    answer_key: dict[tuple[str, str], float] = {}
    rows: list[tuple[str, str]] = []  # (label, figures) for the final table

    # ---- 1. teacher scoring ----------------------------------------------------------------------------
    with rep.section("teacher: bi-encoder"):
        from harness.teachers.bi_encoder import BiEncoderTeacher

        bi = base.teacher.bi_encoder
        teacher = BiEncoderTeacher(model_path, store, fields, bi.pooling, bi.normalize, bi.query_max_len,
                                   bi.doc_max_len, base.teacher.batch_size)
        tok, model, bs = teacher.encoder.tokenizer, teacher.encoder.model, base.teacher.batch_size

        def raw_encode(batch_texts, max_len):
            out = []
            with torch.inference_mode(), autocast(device):
                for s in range(0, len(batch_texts), bs):
                    enc = tok(batch_texts[s:s + bs], padding=True, truncation=True, max_length=max_len,
                              return_tensors="pt").to(device)
                    hidden = model(**enc).last_hidden_state
                    if bi.pooling == "cls":
                        emb = hidden[:, 0]
                    else:
                        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                        emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                    if bi.normalize:
                        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
                    out.append(emb.float().cpu().numpy())
            return np.concatenate(out)

        def raw_bi(reqs=requests):
            ids = list(dict.fromkeys(d for r in reqs for d in r.doc_ids))
            pos = {d: i for i, d in enumerate(ids)}
            d_emb = raw_encode([doc_text(d) for d in ids], bi.doc_max_len)
            q_emb = raw_encode([r.query for r in reqs], bi.query_max_len)
            return np.concatenate([d_emb[[pos[d] for d in r.doc_ids]] @ q for r, q in zip(reqs, q_emb)])

        def harness_bi(reqs=requests):
            teacher._doc_emb.clear()  # no cached passage embeddings: every repeat encodes every passage
            return teacher.score_pairs(reqs)

        raw_bi(requests[:4]), harness_bi(requests[:4])  # warm-up (allocations, kernels)
        best, res = best_of({"raw": raw_bi, "harness": harness_bi}, args.repeats, sync)
        diff = float(np.max(np.abs(res["raw"] - res["harness"])))
        rate = {k: n_pairs / v for k, v in best.items()}
        rep.data["teacher_bi_encoder"] = {
            "pairs": n_pairs, "passages": len({d for r in requests for d in r.doc_ids}),
            "harness_pairs_per_s": rate["harness"], "raw_pairs_per_s": rate["raw"],
            "ratio_harness_raw": rate["harness"] / rate["raw"], "max_abs_score_diff": diff,
            "seconds": best, "score_mean": float(res["harness"].mean()),
            "settings": {"pooling": bi.pooling, "normalize": bi.normalize, "query_max_len": bi.query_max_len,
                         "doc_max_len": bi.doc_max_len, "batch_size": bs}}
        tol = 2e-2 if precision(device) == "bf16" else 1e-4
        rep.check("teacher_bi_encoder_agrees", diff <= tol, f"max |harness - raw| = {diff:.2e} (tolerance {tol})")
        flat = iter(res["harness"].tolist())
        for r in requests:
            for d in r.doc_ids:
                answer_key[(r.qid, d)] = next(flat)
        rows.append(("teacher bi-encoder", f"{rate['harness']:9.0f} pairs/s  raw {rate['raw']:9.0f}  ratio "
                                           f"{rate['harness'] / rate['raw']:.2f}  max|diff| {diff:.1e}"))
        log(rows[-1][0] + ": " + rows[-1][1])
        del teacher, model
        free()

    with rep.section("teacher: cross-encoder scorer"):
        from harness.teachers.cross_encoder import CrossEncoderScorer, load_cross_encoder

        t = base.teacher
        torch.manual_seed(args.seed)  # the fresh head: same scores every run
        ce_tok, ce_model = load_cross_encoder(model_path, allow_new_head=True)
        scorer = CrossEncoderScorer(ce_tok, ce_model, t.max_len, t.batch_size, device)
        queries_l = [r.query for r in requests for _ in r.doc_ids]
        passages_l = [doc_text(d) for r in requests for d in r.doc_ids]

        def raw_ce(qs=queries_l, ps=passages_l):
            out = []
            with torch.inference_mode(), autocast(device):
                for s in range(0, len(qs), t.batch_size):
                    enc = ce_tok(qs[s:s + t.batch_size], ps[s:s + t.batch_size], padding=True,
                                 truncation="only_second", max_length=t.max_len, return_tensors="pt").to(device)
                    out.append(scorer.model(**enc).logits[:, 0].float().cpu().numpy())
            return np.concatenate(out)

        def harness_ce(qs=queries_l, ps=passages_l):
            return scorer.score_texts(qs, ps)

        raw_ce(queries_l[:64], passages_l[:64]), harness_ce(queries_l[:64], passages_l[:64])  # warm-up
        best, res = best_of({"raw": raw_ce, "harness": harness_ce}, args.repeats, sync)
        diff = float(np.max(np.abs(res["raw"] - res["harness"])))
        spread = float(np.std(res["harness"]))
        rate = {k: n_pairs / v for k, v in best.items()}
        rep.data["teacher_cross_encoder"] = {
            "pairs": n_pairs, "harness_pairs_per_s": rate["harness"], "raw_pairs_per_s": rate["raw"],
            "ratio_harness_raw": rate["harness"] / rate["raw"], "max_abs_score_diff": diff, "score_std": spread,
            "seconds": best, "settings": {"max_len": t.max_len, "batch_size": t.batch_size,
                                          "head": "fresh one-logit head (untrained)"}}
        top = float(np.max(np.abs(res["raw"])))
        rep.data["teacher_cross_encoder"]["max_abs_score"] = top
        tol = (3e-2 if precision(device) == "bf16" else 1e-4) * max(1.0, top)
        rep.check("teacher_cross_encoder_agrees", diff <= tol,
                  f"max |harness - raw| = {diff:.2e} (tolerance {tol:.1e}; scores up to {top:.3f}, std {spread:.3f})")
        rows.append(("teacher cross-encoder", f"{rate['harness']:9.0f} pairs/s  raw {rate['raw']:9.0f}  ratio "
                                              f"{rate['harness'] / rate['raw']:.2f}  max|diff| {diff:.1e}"))
        log(rows[-1][0] + ": " + rows[-1][1])
        del scorer, ce_model
        free()

    # ---- 2. students ------------------------------------------------------------------------------------
    for family in families:
        fig: dict = {}
        rep.data.setdefault("students", {})[family] = fig
        student = None
        doc_reps = q_reps = exact_hits = None
        r = recipes[family]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        with rep.section(f"{family}: build"):
            from harness.students import build_student, student_settings

            settings = student_settings(r)
            torch.manual_seed(r.seed)
            calibration = texts[:64]  # as the pipeline: the first 64 passages of the corpus
            t0 = time.perf_counter()
            student = build_student(family, model_path, settings, calibration).to(device)
            sync()
            fig["build_seconds"] = time.perf_counter() - t0
            fig["settings"] = settings
            fig["parameters"] = sum(p.numel() for p in student.parameters())
            fig["param_dtypes"] = sorted({str(p.dtype) for p in student.parameters()})
            rep.check(f"{family}_float32_weights", fig["param_dtypes"] == ["torch.float32"],
                      f"parameter dtypes {fig['param_dtypes']}")
        if student is None:
            continue

        with rep.section(f"{family}: train {args.steps} steps"):
            from harness.distill.targets import StaticTargets
            from harness.distill.trainer import Objective, make_examples, train_student

            count = r.negatives.count
            train_groups = [Group(g.qid, g.positives, g.negatives[:count]) for g in groups]
            examples = make_examples(train_groups, count + 1)
            objective = Objective(family, r.distill, r.student.splade).to(device)
            cfg = dataclasses.replace(r.train, max_steps=args.steps, checkpoint_every=0)
            stamps: list[float] = []

            def stamp(_student, _examples, _step):  # called at the start of every step after the first
                stamps.append(time.perf_counter())
                return None

            with tempfile.TemporaryDirectory(prefix="gpu-check-train-") as tmp:
                sync()
                t0 = time.perf_counter()
                info = train_student(student, examples, train.queries, doc_text, StaticTargets(answer_key),
                                     objective, cfg, r.seed, Path(tmp), Path(tmp) / "scratch", refresh=stamp)
                sync()
                wall = time.perf_counter() - t0
                history = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
            steps = len(history)
            losses = [h["loss"] for h in history]
            # steady state: from the start of step 2 to the start of the last step (each step ends in .item())
            steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) >= 2 else None
            secs = info["train_seconds"] if info["train_seconds"] > 0 else wall
            fig["train"] = {
                "steps": steps, "examples_available": len(examples), "batch_queries": cfg.batch_queries,
                "group_size": count + 1, "loss": info["loss"], "target_scale": info.get("target_scale"),
                "train_seconds": info["train_seconds"], "wall_seconds_with_setup": wall,
                "steps_per_s": steps / secs, "examples_per_s": steps * cfg.batch_queries / secs,
                "steady_steps_per_s": steady,
                "steady_examples_per_s": steady * cfg.batch_queries if steady else None,
                "first_loss": losses[0], "last_loss": losses[-1], "loss_first10": info["loss_first10"],
                "loss_last10": info["loss_last10"], "precision": info["precision"],
                "last_row": history[-1]}
            finite = all(math.isfinite(x) for x in losses)
            rep.check(f"{family}_losses_finite", finite and steps > 0, f"{steps} steps, losses {losses[:3]}...")
            if steps < args.steps:
                log(f"    note: {steps} steps (only {len(examples)} examples, {cfg.batch_queries} per step)")
            steady_s = f", steady {steady:.2f}/s" if steady else ""
            rows.append((f"{family} train", f"{fig['train']['steps_per_s']:7.2f} steps/s  "
                                             f"{fig['train']['examples_per_s']:7.1f} ex/s  ({steps} steps{steady_s})"
                                             f"  loss {losses[0]:.4g} -> {losses[-1]:.4g}"))
            log(rows[-1][0] + ": " + rows[-1][1])
            del objective
            free()

        with rep.section(f"{family}: encode corpus"):
            student.eval()
            raw_fn, keep = raw_encoder(family, student, device, autocast)
            raw_fn(texts[:student.batch_size])  # warm-up both paths
            student.infer_docs(texts[:student.batch_size])
            best, res = best_of({"raw": lambda: raw_fn(texts), "harness": lambda: student.infer_docs(texts)},
                                args.repeats, sync)
            doc_reps = res["harness"]
            rate = {k: len(texts) / v for k, v in best.items()}
            fig["encode"] = {"docs": len(texts), "harness_docs_per_s": rate["harness"], "raw_docs_per_s": rate["raw"],
                             "ratio_harness_raw": rate["harness"] / rate["raw"], "seconds": best,
                             "batch_size": student.batch_size, "doc_max_len": student.doc_max_len,
                             "raw_is": keep["what"]}
            if family == "colbert":
                lengths = np.array([len(x) for x in doc_reps])
                fig["encode"].update(avg_doc_tokens=float(lengths.mean()), tokens=int(lengths.sum()))
            elif family == "splade":
                lengths = np.array([len(x) for x in doc_reps])
                fig["encode"].update(avg_doc_terms=float(lengths.mean()), max_doc_terms=int(lengths.max()))
            agree = compare_raw(family, student, doc_reps, keep)
            if agree is not None:
                fig["encode"]["max_abs_diff_vs_raw"] = agree
                tol = 5e-2 if precision(device) == "bf16" else 1e-3
                rep.check(f"{family}_encoding_agrees", agree <= tol * keep["scale"],
                          f"max |harness - raw| = {agree:.2e} over {keep['n']} passages "
                          f"(tolerance {tol * keep['scale']:.1e})")
            rows.append((f"{family} encode", f"{rate['harness']:9.0f} docs/s   raw {rate['raw']:9.0f}  ratio "
                                              f"{rate['harness'] / rate['raw']:.2f}"
                                              + (f"  max|diff| {agree:.1e}" if agree is not None else "")))
            log(rows[-1][0] + ": " + rows[-1][1])
            del res, raw_fn, keep
            free()

        if doc_reps is not None:
            with rep.section(f"{family}: exact retrieval"):
                from harness.evaluate import evaluate

                qids = list(test.queries)
                sync()
                t0 = time.perf_counter()
                q_reps = student.infer_queries([test.queries[q] for q in qids])
                sync()
                q_seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
                run, exact_hits, extra = exact_search(family, q_reps, doc_reps, doc_ids, qids, args.device)
                sync()
                s_seconds = time.perf_counter() - t0
                agg, _ = evaluate(run, test.qrels, MEASURES)
                fig["exact"] = {"queries": len(qids), "query_encode_seconds": q_seconds, "search_seconds": s_seconds,
                                "search": extra.pop("search"), **{k: float(v) for k, v in agg.items()}, **extra}
                rep.check(f"{family}_retrieval_nonzero", agg["R@100"] > 0, f"R@100 = {agg['R@100']:.3f}")
                rows.append((f"{family} exact", f"nDCG@10 {agg['nDCG@10']:.4f}  R@100 {agg['R@100']:.4f}  "
                                                 f"({len(qids)} q, search {s_seconds:.2f} s)"))
                log(rows[-1][0] + ": " + rows[-1][1])

        if family == "colbert" and doc_reps is not None and q_reps is not None:
            with rep.section("colbert: PLAID (fast-plaid)"):
                from harness.evaluate import evaluate
                from harness.index.base import overlap_at_k
                from harness.index.plaid import PlaidSearcher, build_plaid, disk_bytes

                p = r.index.plaid
                knobs = {"n_ivf_probe": p.n_ivf_probe, "n_full_scores": p.n_full_scores}
                qids = list(test.queries)
                with tempfile.TemporaryDirectory(prefix="gpu-check-plaid-") as tmp:
                    index_dir = Path(tmp) / "index"
                    sync()
                    t0 = time.perf_counter()
                    built = build_plaid(list(doc_reps), index_dir, nbits=p.nbits, kmeans_niters=p.kmeans_niters,
                                        seed=r.seed, device=args.device)
                    sync()
                    index_seconds = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    with PlaidSearcher(index_dir, device=args.device) as searcher:
                        open_seconds = time.perf_counter() - t0
                        searcher.search(q_reps[:1], DEPTH, **knobs)  # warm-up
                        sync()
                        t0 = time.perf_counter()
                        hits = searcher.search(q_reps, DEPTH, **knobs)
                        sync()
                        batch_seconds = time.perf_counter() - t0
                        lat = []
                        for q in q_reps[: args.latency_queries]:
                            t1 = time.perf_counter()
                            searcher.search([q], DEPTH, **knobs)
                            sync()
                            lat.append(time.perf_counter() - t1)
                    size = disk_bytes(index_dir)
                run = {q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}
                agg, _ = evaluate(run, test.qrels, MEASURES)
                overlap10 = overlap_at_k(hits, exact_hits, 10)
                overlap100 = overlap_at_k(hits, exact_hits, 100)
                fig["plaid"] = {
                    "index_seconds": index_seconds, "index_seconds_harness": built["seconds"], "tokens": built["tokens"],
                    "index_bytes": size, "bytes_per_token": size / max(built["tokens"], 1), "nbits": p.nbits,
                    "kmeans_niters": p.kmeans_niters, **knobs, "open_seconds": open_seconds,
                    "batch_search_seconds": batch_seconds, "batch_queries_per_s": len(qids) / batch_seconds,
                    "latency_ms_p50": float(np.percentile(lat, 50)) * 1000,
                    "latency_ms_p95": float(np.percentile(lat, 95)) * 1000, "latency_queries": len(lat), "k": DEPTH,
                    "overlap@10_vs_exact": overlap10, "overlap@100_vs_exact": overlap100,
                    **{k: float(v) for k, v in agg.items()}}
                rep.check("colbert_plaid_overlap", overlap10 >= 0.5, f"overlap@10 with exact MaxSim {overlap10:.3f}")
                rows.append(("colbert PLAID", f"index {index_seconds:.2f} s  p50 {fig['plaid']['latency_ms_p50']:.2f} ms"
                                              f"  p95 {fig['plaid']['latency_ms_p95']:.2f} ms  overlap@10 "
                                              f"{overlap10:.3f}  nDCG@10 {agg['nDCG@10']:.4f}"))
                log(rows[-1][0] + ": " + rows[-1][1])

        if device.type == "cuda":
            fig["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        del student, doc_reps, q_reps, exact_hits
        free()
        rep.save()

    # ---- summary ----------------------------------------------------------------------------------------
    total = time.perf_counter() - t_start
    rep.data["total_seconds"] = total
    heavy = [m for m in ("pyserini", "faiss", "ir_datasets", "jnius") if sys.modules.get(m) is not None]
    rep.data["heavy_modules_imported"] = heavy
    rep.check("no_pyserini_faiss_ir_datasets", not heavy, f"imported: {heavy or 'none'}")
    failed = [k for k, v in rep.data["checks"].items() if not v["ok"]]
    rep.save()
    width = max((len(a) for a, _ in rows), default=10)
    print(f"\n== gpu_check: {rep.data['meta']['device_name']} ({device}, {precision(device)}), "
          f"{len(corpus)} passages, {len(test.queries)} test queries, {total:.0f} s", flush=True)
    for label, figures in rows:
        print(f"{label:<{width}}  {figures}", flush=True)
    print(f"checks: {len(rep.data['checks']) - len(failed)} ok, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else "") + f"; errors: {len(rep.data['errors'])}"
          + (f" ({', '.join(e['section'] for e in rep.data['errors'])})" if rep.data["errors"] else ""), flush=True)
    if args.out:
        print(f"JSON: {args.out}", flush=True)
    return 1 if failed or rep.data["errors"] else 0


# ---- the raw loops and the exact searches ---------------------------------------------------------------

def raw_encoder(family: str, student, device, autocast):
    """A plain transformers loop over the student's own backbone and head: texts in input order, batches of
    ``student.batch_size``, plain tokenizer (no ColBERT markers, no punctuation skipping), the same
    precision. Returns (fn(texts) -> list, keep) where ``keep`` holds the first passages' outputs for the
    agreement check (dense, SPLADE: same tokenisation as the harness, so the outputs must match)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    tok, bs, max_len = student.tokenizer, student.batch_size, student.doc_max_len
    keep: dict = {"n": 256, "rows": None, "scale": 1.0}

    def batches(texts):
        for s in range(0, len(texts), bs):
            yield s, tok(list(texts[s:s + bs]), padding=True, truncation=True, max_length=max_len,
                         return_tensors="pt").to(device)

    if family == "colbert":
        keep["what"] = "backbone + projection + L2 norm, token vectors of non-padding tokens to host"

        def fn(texts):
            out = []
            with torch.inference_mode(), autocast(device):
                for _, enc in batches(texts):
                    hidden = student.backbone(**enc).last_hidden_state
                    vec = F.normalize(student.projection(hidden), p=2, dim=-1).float().cpu()
                    mask = enc["attention_mask"].bool().cpu()
                    out.extend(e[m].numpy() for e, m in zip(vec, mask))
            return out
    elif family == "dense":
        keep["what"] = f"backbone + {student.pooling} pooling, vectors to host"

        def fn(texts):
            out, first = [], []
            with torch.inference_mode(), autocast(device):
                for s, enc in batches(texts):
                    hidden = student.backbone(input_ids=enc["input_ids"],
                                              attention_mask=enc["attention_mask"]).last_hidden_state
                    if student.pooling == "cls":
                        emb = hidden[:, 0]
                    else:
                        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                        emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                    if student.normalize:
                        emb = F.normalize(emb, dim=-1)
                    arr = emb.float().cpu().numpy()
                    out.extend(arr)
                    if s < keep["n"]:
                        first.append(arr)
            keep["rows"] = np.concatenate(first)[: keep["n"]]
            keep["scale"] = float(np.abs(keep["rows"]).max())
            return out
    else:  # splade
        keep["what"] = "AutoModelForMaskedLM logits (B,T,V), masked max, log1p(relu), (B,V) rows to host"

        def fn(texts):
            out, first = [], []
            with torch.inference_mode(), autocast(device):
                for s, enc in batches(texts):
                    logits = student.mlm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                    pad = enc["attention_mask"].unsqueeze(-1) == 0
                    top = logits.float().masked_fill(pad, float("-inf")).amax(dim=1)
                    w = (torch.log1p(torch.relu(top)) * student.term_mask).cpu()
                    out.append(int((w > 0).sum()))
                    if s < keep["n"]:
                        first.append(w)
            keep["rows"] = torch.cat(first)[: keep["n"]].numpy()
            keep["scale"] = max(float(keep["rows"].max()), 1.0)
            return out
    return fn, keep


def compare_raw(family: str, student, doc_reps, keep) -> "float | None":
    """Largest |harness - raw| over the first passages (dense vectors; SPLADE weights); None for ColBERT."""
    import numpy as np

    rows = keep.get("rows")
    if rows is None:
        return None
    n = min(len(rows), len(doc_reps))
    keep["n"] = n
    if family == "dense":
        return float(np.max(np.abs(np.stack(doc_reps[:n]) - rows[:n])))
    index = {t: i for i, t in enumerate(student.vocab)}
    harness = np.zeros_like(rows[:n])
    for i, weights in enumerate(doc_reps[:n]):
        for term, w in weights.items():
            harness[i, index[term]] = w
    return float(np.max(np.abs(harness - rows[:n])))


def exact_search(family: str, q_reps, doc_reps, doc_ids, qids, device: str):
    """(run {qid: [(doc_id, score)]}, hits by position (ColBERT) or None, extra figures) with the family's
    exact search of the harness."""
    import numpy as np

    if family == "colbert":
        from harness.index.plaid import exact_maxsim_search

        hits = exact_maxsim_search(q_reps, doc_reps, DEPTH, device=device)
        return ({q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}, hits,
                {"search": "harness.index.plaid.exact_maxsim_search (torch, on the device)"})
    if family == "splade":
        from harness.index.impact import ImpactIndex
        from harness.students.splade import flops_estimate

        hits = ImpactIndex.exhaustive(q_reps, doc_reps, DEPTH)
        return ({q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}, None,
                {"search": "harness.index.impact.ImpactIndex.exhaustive (scipy; Lucene impact index skipped)",
                 "avg_query_terms": float(np.mean([len(r) for r in q_reps])),
                 "flops": flops_estimate(q_reps, doc_reps)})
    from harness.index.dense import FaissIndex

    hits = FaissIndex.exhaustive(q_reps, doc_reps, DEPTH)
    return ({q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}, None,
            {"search": "harness.index.dense.FaissIndex.exhaustive (numpy; FAISS skipped)"})


if __name__ == "__main__":
    sys.exit(main())
