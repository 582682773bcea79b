"""Each benchmark script runs on a tiny slice, writes its results file and prints ``ratio=`` last (the
figures themselves are measured by running the scripts at full size, not here: benchmarks are not timed tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "evaluation": (["--max-queries", "20", "--depth", "50", "--repeats", "1"], ["evaluation"]),
    "encoding": (["--docs", "16", "--max-len", "32", "--repeats", "1"],
                 ["encoding-dense", "encoding-splade", "encoding-colbert"]),
    "search": (["--docs", "100", "--queries", "5", "--k", "20", "--max-len", "32", "--repeats", "1"],
               ["search-splade", "search-dense"]),
    # PISA when pyterrier-pisa is installed (the bench extra), else Lucene vs exact: both end with a ratio
    "sparse_engines": (["--docs", "100", "--queries", "5", "--ks", "10,20", "--max-len", "32", "--repeats", "1"],
                       ["sparse-engines"]),
    "training_step": (["--steps", "1", "--batch", "2", "--doc-len", "32"],
                      ["training-step-dense", "training-step-splade", "training-step-colbert"]),
    # sentence-transformers' trainer needs the bench extra (datasets, accelerate): without it the test skips
    "peer_training": (["--steps", "1", "--batch", "2", "--doc-len", "32", "--repeats", "1"],
                      ["peer-training-dense", "peer-training-splade"]),
    "teacher_scoring": (["--pairs", "16", "--batch-size", "8", "--max-len", "32", "--repeats", "1"],
                        ["teacher-scoring"]),
    "scaling": (["--sizes", "40,80", "--max-len", "32", "--queries", "3"], ["scaling"]),
    "unit_costs": (["--backbone", "tiny", "--steps", "1", "--batch", "2", "--docs", "10", "--repeat", "2",
                    "--pairs", "16"], ["unit-costs-cpu"]),
    # ONNX Runtime comes with Pyserini; the ONNX export needs the bench extra (onnx, onnxscript): a variant
    # that cannot run is reported as failed, the benchmark still ends with its ratio
    "cpu_inference": (["--families", "dense", "--docs", "30", "--max-queries", "3", "--variants", "int8,ort"],
                      ["cpu-inference"]),
    "rerun": (["--recipe", "baselines/bm25-scifact", "--set", "eval.max_queries=10"], ["rerun"]),
}


FAST = {"evaluation"}  # the others load models: ~25-60 s each even on a tiny slice, so they run with -m slow


@pytest.mark.parametrize("script", [pytest.param(s, marks=() if s in FAST else pytest.mark.slow) for s in sorted(CASES)])
def test_a_benchmark_runs_on_a_tiny_slice_and_prints_a_ratio(script, tmp_path, data_dir):
    args, names = CASES[script]
    if script == "peer_training":
        pytest.importorskip("datasets")
        pytest.importorskip("accelerate")
    env = {**os.environ, "HARNESS_BENCH_RESULTS": str(tmp_path), "HARNESS_PROGRESS": "0"}
    out = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *args], capture_output=True, text=True,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("ratio=")
    float(out.stdout.strip().splitlines()[-1].split("=", 1)[1])
    for name in names:
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert {"ratio", "floor", "higher_is_better", "figures", "machine"} <= set(data)
        assert data["ratio"] > 0 and data["machine"]["cores"]


@pytest.mark.slow
def test_the_plaid_settings_benchmark_chooses_on_one_query_set_over_another_s_index(tmp_path, data_dir):
    """A ColBERT run with a PLAID index on a slice, then the benchmark: settings searched with the dev queries
    over the test corpus's index (the same corpus), one chosen, its p50 over exact MaxSim's as the ratio."""
    env = {**os.environ, "HARNESS_BENCH_RESULTS": str(tmp_path), "HARNESS_PROGRESS": "0"}
    runs, cut = tmp_path / "runs", ["--max-queries", "6", "--max-docs", "120"]
    run = subprocess.run([sys.executable, "-m", "harness", "run", "scifact/colbert-untrained", "--runs-dir", str(runs),
                          "--set", 'index.search="index"', "--set", "eval.max_queries=6", "--set", "eval.max_docs=120",
                          "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "eval.dev=false", "-q"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = subprocess.run([sys.executable, str(BENCH / "plaid_settings.py"), str(runs / "scifact-colbert-untrained"),
                          "--dataset", "beir/scifact/train[dev]", "--index-of", "beir/scifact/test", *cut,
                          "--settings", "2:64,1:16", "--latency-queries", "3"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "chosen on beir/scifact/train[dev]" in out.stdout and out.stdout.strip().splitlines()[-1].startswith("ratio=")
    data = json.loads((tmp_path / "plaid-settings.json").read_text())
    assert data["figures"]["chosen"] in ("2:64", "1:16") and len(data["figures"]["settings"]) == 2
    assert data["figures"]["dataset"].startswith("beir/scifact/train[dev]") and data["ratio"] > 0


def test_the_scale_report_turns_unit_costs_into_a_table(tmp_path):
    costs = {"device": "cuda", "backbone": "bert-base", "teacher_pairs_per_s": 2000.0, "peak_rss_bytes": 2**33}
    for family in ("dense", "splade", "colbert"):
        costs[family] = {"train_steps_per_s": 2.0, "batch_queries": 32, "encode_docs_per_s": 1000.0,
                         "index_build_seconds": 10.0, "indexed_passages": 2920, "stage_bytes_per_1k_passages": 3_000_000,
                         "tokens_per_passage": 70.0, "plaid_bytes_per_token": 40.0,
                         "plaid_build_seconds_per_1m_tokens": 60.0, "train_peak_gpu_bytes": 20 * 2**30,
                         "train_ram_bytes": 3 * 2**30, "index_ram_bytes": 2**30}
    costs["splade"]["batch_queries"] = 8  # measured at a smaller batch than the recipe's 32 (a CPU's memory)
    src = tmp_path / "unit-costs-cuda.json"
    src.write_text(json.dumps({"figures": costs}))
    # scaling.py's rows: dense's peak RSS grows 1 KiB a passage, for a student whose index takes 1,500 bytes a
    # passage -- half the 3,000 of this backbone's (unit costs above)
    scaling = tmp_path / "rows.jsonl"
    scaling.write_text("\n".join(json.dumps({"family": "dense", "passages": n, "peak_rss_bytes": 2**30 + 1024 * n,
                                             "index_bytes": 1500 * n})
                                 for n in (5000, 20000, 50000)) + "\n")
    out = tmp_path / "scale.md"
    done = subprocess.run([sys.executable, str(BENCH / "scale_report.py"), str(src), "--out", str(out),
                           "--scaling", str(scaling)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    # 4.05M answer-key pairs at 2,000 pairs/s: 0.56 h on one device, a quarter on four
    assert "| answer key (teacher scores, shared by static + multitask) | 4,053,334 pairs | 2e+03 pairs/s | 0.6 | 0.1 | 0.1 |" in text
    # 16,649 steps of 32 at 2 steps/s = 2.3 h; the corpus at 1,000 passages/s = 2.5 h; PLAID: not sharded
    assert ("| dense: train one student (16,649 steps of 32 queries) | 532,768 examples | 64 examples/s | 2.3 | 0.6 "
            "| 0.3 | 0.0 | 3.0 | 20.0 |") in text
    # measured at 8 a step: 2 steps/s are 16 examples/s, four times the hours
    assert ("| splade: train one student (16,649 steps of 32 queries; rate measured at 8 a step) | 532,768 examples "
            "| 16 examples/s | 9.2 |") in text
    # RAM of the corpus-sized stages: the line through the scaling rows (1 GiB + 1 KiB a passage) at 8.8M, its
    # growth doubled for an index twice as wide (FAISS holds it in memory)
    dense_index = next(line for line in text.splitlines() if line.startswith("| dense: index build"))
    assert dense_index.split("|")[-3].strip() == f"{(2**30 + 2048 * 8_841_823) / 2**30:.1f}" == "17.9"
    assert "growth per passage is multiplied by 2.00" in text
    assert "| splade: index build (Lucene impacts) (RAM at 2,920 passages) |" in text  # no scaling rows: as measured
    assert "| dense: encode the corpus | 8,841,823 passages | 1e+03 passages/s | 2.5 | 0.6 | 0.3 |" in text
    plaid = next(line for line in text.splitlines() if line.startswith("| colbert: PLAID index build"))
    cells = [c.strip() for c in plaid.split("|")]
    assert cells[4] == cells[5] == cells[6] == "10.3"  # 619M tokens at 60 s per 1M, one process


def test_scaling_refuses_a_student_that_is_not_a_family_and_folder(tmp_path):
    """--student FAMILY=DIR is checked before anything is measured: one line, exit 2."""
    for spec in ("splade", f"bm25={tmp_path}", f"splade={tmp_path / 'missing'}"):
        done = subprocess.run([sys.executable, str(BENCH / "scaling.py"), "--student", spec, "--sizes", "10"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "--student" in done.stderr.splitlines()[-1], (spec, done.stderr)


def test_scaling_fits_each_machine_apart_and_measures_again_on_another(tmp_path):
    """Rows carry the machine that measured them: a rows file from another machine is not taken for this one's
    (it is measured again), and the exponents are fitted per machine, never through two machines' rows."""
    sys.path.insert(0, str(BENCH))
    from _common import machine
    from scaling import machine_label

    here = machine_label(machine())
    rows = tmp_path / "rows.jsonl"

    def row(n, seconds, where):
        return {"family": "dense", "passages": n, "encode_seconds": seconds, "index_seconds": 0.1,
                "index_bytes": 100 * n, "latency_ms_p50": 1.0, "peak_rss_bytes": 2**30, "max_len": 32,
                "rss_per_1k_passages_mb": 1.0, **({"machine": where} if where else {})}

    # this machine: linear (b = 1); the other machine (and a row that did not record one): 4x slower at 80
    rows.write_text("\n".join(json.dumps(r) for r in (row(40, 1.0, here), row(80, 2.0, here), row(40, 1.0, None),
                                                      row(80, 4.0, None))) + "\n")
    env = {**os.environ, "HARNESS_BENCH_RESULTS": str(tmp_path), "HARNESS_PROGRESS": "0"}
    done = subprocess.run([sys.executable, str(BENCH / "scaling.py"), "--family", "dense", "--sizes", "40,80",
                           "--max-len", "32", "--rows", str(rows)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("kept from") == 2  # both sizes were measured here: nothing measured again
    exponents = json.loads((tmp_path / "scaling.json").read_text())["figures"]["exponents"]
    assert exponents[f"dense ({here})"]["encode_seconds"] == 1.0
    assert exponents["dense (machine not recorded)"]["encode_seconds"] == 2.0  # a fit through all four: ~1.5
    assert f"| {here} | dense | 80 |" in done.stdout

    # the rows of another machine only: this machine has measured nothing, so a size is measured again
    rows.write_text("\n".join(json.dumps(r) for r in (row(40, 1.0, "Some other CPU, 2 cores"),)) + "\n")
    done = subprocess.run([sys.executable, str(BENCH / "scaling.py"), "--family", "dense", "--sizes", "40",
                           "--max-len", "32", "--queries", "3", "--rows", str(rows)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kept from" not in done.stdout
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [r.get("machine") for r in written] == ["Some other CPU, 2 cores", here]


def test_scale_report_draws_each_rss_line_through_one_machine():
    sys.path.insert(0, str(BENCH))
    from scale_report import rss_fits

    rows = [{"family": "dense", "passages": n, "peak_rss_bytes": 2**30 + 1024 * n, "machine": "A"} for n in (10, 20, 40)]
    rows += [{"family": "dense", "passages": n, "peak_rss_bytes": 2**30 + 9 * 1024 * n, "machine": "B"} for n in (10, 80)]
    fit = rss_fits(rows)["dense"]
    assert fit.machine == "A" and fit.sizes == 3 and abs(fit.bytes_per_passage - 1024) < 1e-6
