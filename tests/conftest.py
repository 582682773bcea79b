"""Shared fixtures. Tests use real data from $HARNESS_DATA_DIR (default: ../shared/data beside the repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"].split(os.pathsep)[0])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"test data not found: set HARNESS_DATA_DIR to the folder holding scifact/, cranfield/, ... "
                    f"(looked in {DATA_DIR})")
    return DATA_DIR


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 1800):
    """Run ``python -m harness ARGS`` in a subprocess, as a user or CI job would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def assert_refused_before_any_work(runs: Path, recipe: str, sets: list, field: str, words: str) -> None:
    """``harness validate --data`` and ``harness run`` of ``recipe`` with ``--set`` ``sets`` both exit 2 with one
    ``error:`` line naming ``field`` and saying ``words``, and nothing is built under ``runs``."""
    extra = [a for s in sets for a in ("--set", s)]
    for args in (["validate", recipe, "--data", *extra], ["run", recipe, "--runs-dir", str(runs), *extra]):
        out = run_cli(*args)
        assert out.returncode == 2, out.stderr[-2000:]
        (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
        assert f"{field}: " in line and words in line, line
    assert not runs.exists() or not any(runs.rglob("*-*"))  # nothing built


def last_json_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def make_tiny_bert(out: Path, kind: str = "cross-encoder", hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny random BERT with the real MiniLM tokenizer, saved the way Hugging Face saves models.

    kind: "cross-encoder" (BertForSequenceClassification, one logit), "encoder" (BertModel) or "mlm"
    (BertForMaskedLM). Tests load it back through the harness's real loading code."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel

    from harness.models import minilm_path

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=512, num_labels=1)
    cls = {"cross-encoder": BertForSequenceClassification, "encoder": BertModel, "mlm": BertForMaskedLM}[kind]
    model = cls(config).eval()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-ce", "cross-encoder")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-enc", "encoder")


def write_impact_index(out: Path, docs: dict) -> None:
    """The index stage's own writer over known weights, under the passages' ids: a Lucene index at out/index
    (quantisation 100)."""
    from harness.index.impact import ImpactIndex
    from harness.recipe import load_recipe

    cfg = load_recipe("scifact/splade-untrained").recipe.index
    assert cfg.impact.quantization == 100
    writer = ImpactIndex.writer(out, cfg, approximate=True)
    writer.ids(list(docs))
    writer.add(list(docs.values()))
    writer.finish()


@pytest.fixture
def fp32(monkeypatch):
    """Exact-equality tests compare against a plain fp32 forward: no bf16 autocast on CPUs that have it."""
    monkeypatch.setenv("HARNESS_PRECISION", "fp32")
