"""Teachers: groups, scoring, the ensemble, the answer key (reuse, resume), teacher errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import last_json_line, run_cli
from harness.data.dataset import Doc
from harness.distill.groups import build_groups
from harness.errors import ModelError
from harness.teachers.base import Request
from harness.teachers.ensemble import EnsembleTeacher, normalise

QRELS = {"q1": {"p1": 1, "p2": 2, "n0": 0}, "q2": {"p3": 1}, "q3": {"x": 0}}
POOLS = {"q1": [(d, 10.0 - i) for i, d in enumerate(["p2", "a", "n0", "b", "p1", "c", "d", "e", "f"])],
         "q2": [("p3", 5.0), ("g", 4.0), ("h", 3.0)]}


# ---- groups -----------------------------------------------------------------------------------------

def test_groups_exclude_positives_and_are_deterministic():
    groups = build_groups(QRELS, POOLS, count=4, seed=7)
    assert [g.qid for g in groups] == ["q1", "q2"]  # q3 has no positive
    g1 = groups[0]
    assert g1.positives == ("p1", "p2")
    assert len(g1.negatives) == 4 and not set(g1.negatives) & {"p1", "p2"}
    assert set(g1.negatives) <= {"a", "n0", "b", "c", "d", "e", "f"}  # judged non-relevant may be a negative
    order = [d for d, _ in POOLS["q1"]]
    assert list(g1.negatives) == sorted(g1.negatives, key=order.index)  # BM25 order kept
    assert groups[1].negatives == ("g", "h")  # fewer candidates than asked: all of them
    assert build_groups(QRELS, POOLS, count=4, seed=7) == groups
    assert any(build_groups(QRELS, POOLS, count=4, seed=s)[0].negatives != g1.negatives for s in range(8, 20))


def test_groups_do_not_depend_on_other_queries():
    alone = build_groups({"q1": QRELS["q1"]}, POOLS, count=3, seed=1)
    together = build_groups(QRELS, POOLS, count=3, seed=1)
    assert alone[0] == together[0]


# ---- the ensemble -----------------------------------------------------------------------------------

class Fixed:
    """A member with fixed scores per doc id."""

    def __init__(self, table):
        self.table = table

    def score(self, requests):
        return [np.array([self.table[d] for d in r.doc_ids], dtype=np.float32) for r in requests]


def test_normalise():
    v = np.array([1.0, 2.0, 3.0])
    assert normalise(v, v, "minmax").tolist() == [0.0, 0.5, 1.0]
    z = normalise(v, v, "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert normalise(np.array([5.0]), v, "minmax").tolist() == [2.0]  # outside the pool: same scale
    assert normalise(np.array([2.0, 2.0]), np.array([2.0, 2.0]), "zscore").tolist() == [0.0, 0.0]


def test_ensemble_fuses_normalised_members_over_the_pool():
    a = Fixed({"d1": 1.0, "d2": 2.0, "d3": 3.0, "d4": 10.0})
    b = Fixed({"d1": 30.0, "d2": 20.0, "d3": 10.0, "d4": 0.0})
    docs = {d: Doc(d, "", d) for d in ("d1", "d2", "d3", "d4")}
    t = EnsembleTeacher([("a", 0.75, a), ("b", 0.25, b)], docs, ["text"], normalize="minmax")
    pool = [("d1", 0.0), ("d2", 0.0), ("d3", 0.0)]
    (scores,) = t.score([Request("q", "query", ["d1", "d3", "d4"], pool)])
    # minmax over the pool: a -> d1 0, d3 1, d4 4.5 ; b -> d1 1, d3 0, d4 -0.5
    assert scores.tolist() == pytest.approx([0.25, 0.75, 0.75 * 4.5 + 0.25 * -0.5])
    # a pair's score does not depend on what else is scored with it
    (alone,) = t.score([Request("q", "query", ["d4"], pool)])
    assert alone[0] == pytest.approx(scores[2])


# ---- cross-encoder scoring --------------------------------------------------------------------------

def test_cross_encoder_scores_equal_a_direct_model_call(tiny_cross_encoder, fp32):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.teachers.cross_encoder import CrossEncoderTeacher

    docs = {"a": Doc("a", "Title A", "some passage text about cells"), "b": Doc("b", "", "short"),
            "c": Doc("c", "C", "a much longer passage " * 20)}
    teacher = CrossEncoderTeacher(tiny_cross_encoder, docs, ["title", "text"], max_len=64, batch_size=2)
    requests = [Request("q1", "what do cells do", ["a", "b", "c"]), Request("q2", "long query " * 5, ["c", "a"])]
    got = teacher.score(requests)
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder).eval()
    for r, scores in zip(requests, got):
        for d, s in zip(r.doc_ids, scores):
            enc = tok(r.query, docs[d].contents(["title", "text"]), truncation="only_second", max_length=64,
                      return_tensors="pt")
            with torch.no_grad():
                ref = model(**enc).logits[0, 0].item()
            assert s == pytest.approx(ref, abs=1e-4)
    assert teacher.calls == 1


def test_a_model_without_a_trained_head_is_refused(tiny_encoder):
    from harness.teachers.cross_encoder import load_cross_encoder

    with pytest.raises(ModelError, match="no trained classification head"):
        load_cross_encoder(tiny_encoder)


def test_bm25_pair_scores_equal_search_scores(data_dir, tmp_path):
    from harness.data import open_dataset
    from harness.index.lucene import BM25PairScorer, bm25_search, build_bm25_index

    ds = open_dataset("adi")
    build_bm25_index(ds.docs(), ["title", "text"], tmp_path / "index")
    qid, text = next(iter(ds.queries.items()))
    hits = bm25_search(tmp_path / "index", {qid: text}, k=5, k1=0.9, b=0.4)[qid]
    scorer = BM25PairScorer(tmp_path / "index", 0.9, 0.4)
    for doc_id, score in hits:
        assert scorer.score(text, doc_id) == pytest.approx(score, abs=1e-3)


# ---- model resolution -------------------------------------------------------------------------------

def test_missing_teacher_model_errors(tmp_path, monkeypatch):
    from harness.models import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError) as info:
        resolve_model("no-such-owner/no-such-cross-encoder", "teacher.model")
    msg = str(info.value)
    assert msg.startswith('teacher.model: "no-such-owner/no-such-cross-encoder" is not in the Hugging Face cache')
    assert "huggingface-cli download" in msg
    with pytest.raises(ModelError, match="no Hugging Face model there"):
        resolve_model(str(tmp_path), "teacher.model")
    with pytest.raises(ModelError, match="neither a local folder nor a Hugging Face hub name"):
        resolve_model("not a name", "teacher.model")
    assert (resolve_model("minilm") / "config.json").is_file()


# ---- the answer key through the CLI -----------------------------------------------------------------

def ce_recipe(tmp_path: Path, model: Path, name: str, train_queries: int = 40, extra: str = "") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(textwrap.dedent(f"""
        extends = "baselines/teacher-scifact.toml"
        name = "{name}"
        [train]
        dataset = "beir/scifact/train"
        max_queries = {train_queries}
        [negatives]
        depth = 30
        count = 7
        [teacher]
        kind = "cross-encoder"
        model = "{model}"
        max_len = 128
        batch_size = 16
    """) + extra)
    return p


def test_answer_key_is_built_once_and_shared(tmp_path, tiny_cross_encoder, data_dir):
    runs = tmp_path / "runs"
    first = run_cli("answer-key", str(ce_recipe(tmp_path, tiny_cross_encoder, "one")), "--runs-dir", str(runs),
                    "--json")
    assert first.returncode == 0, first.stderr
    a = last_json_line(first.stdout)
    assert not a["reused"] and a["info"]["queries"] == 40
    import pandas as pd

    key = pd.read_parquet(a["path"])
    assert list(key.columns) == ["qid", "pid", "score", "positive"]
    assert key.groupby("qid").size().max() <= 1 + 7 + 2  # positives + 7 negatives
    assert key["qid"].nunique() == 40 and key["positive"].sum() >= 40
    # another recipe (other name, other eval settings) with the same teacher and data reuses it
    second = run_cli("answer-key", str(ce_recipe(tmp_path, tiny_cross_encoder, "two",
                                                 extra="[eval]\ndepth = 10\n")),
                     "--runs-dir", str(runs), "--json")
    assert second.returncode == 0, second.stderr
    b = last_json_line(second.stdout)
    assert b["reused"] and b["path"] == a["path"] and "reuse  answer-key" in second.stderr
    # a different negatives config is a different key
    third = run_cli("answer-key", str(ce_recipe(tmp_path, tiny_cross_encoder, "three")), "--runs-dir", str(runs),
                    "--json", "--set", "negatives.count=3")
    c = last_json_line(third.stdout)
    assert not c["reused"] and c["path"] != a["path"]


def test_interrupted_scoring_resumes_to_the_same_key(tmp_path, data_dir):
    import pandas as pd

    from conftest import make_tiny_bert

    model = make_tiny_bert(tmp_path / "ce", "cross-encoder", hidden=128, layers=4)
    recipe = ce_recipe(tmp_path, model, "resume", train_queries=200)
    env = {"HARNESS_ANSWER_KEY_CHUNK": "64"}
    runs = tmp_path / "runs"
    import os

    proc = subprocess.Popen([sys.executable, "-m", "harness", "answer-key", str(recipe), "--runs-dir", str(runs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    deadline = time.time() + 600
    partial = None
    while time.time() < deadline and proc.poll() is None:
        found = list((runs / "_shared").glob("answer-key-*.partial/chunk-*.parquet")) if (runs / "_shared").exists() \
            else []
        if len(found) >= 3:
            partial = found[0].parent
            break
        time.sleep(0.05)
    assert partial is not None, "scoring finished or failed before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(partial.glob("chunk-*.parquet")))
    assert n_done >= 3
    resumed = run_cli("answer-key", str(recipe), "--runs-dir", str(runs), "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    info = last_json_line(resumed.stdout)["info"]
    assert info["scored_now"] < info["pairs"]  # the finished chunks were not scored again
    clean = run_cli("answer-key", str(recipe), "--runs-dir", str(tmp_path / "clean"), "--json", env=env)
    assert clean.returncode == 0, clean.stderr
    a = pd.read_parquet(last_json_line(resumed.stdout)["path"])
    b = pd.read_parquet(last_json_line(clean.stdout)["path"])
    pd.testing.assert_frame_equal(a, b)
    assert not partial.exists()


def test_missing_teacher_fails_before_any_work(tmp_path, data_dir):
    recipe = ce_recipe(tmp_path, Path("no-such-owner/no-such-model"), "missing")
    out = run_cli("answer-key", str(recipe), "--runs-dir", str(tmp_path / "runs"), env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        f'error: {recipe}: teacher.model: "no-such-owner/no-such-model" is not in the Hugging Face cache')
    assert not (tmp_path / "runs").exists()
    out = run_cli("run", str(recipe), "--runs-dir", str(tmp_path / "runs"), env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_finetune_saves_a_loadable_cross_encoder(tmp_path, tiny_encoder):
    """Fine-tuning starts from an encoder without a head and ends with a trained one-logit head."""
    from types import SimpleNamespace

    from harness.distill.groups import Group
    from harness.teachers.cross_encoder import load_cross_encoder
    from harness.teachers.finetune import finetune_cross_encoder

    docs = {f"d{i}": Doc(f"d{i}", "", f"passage number {i} about topic {i % 3}") for i in range(12)}
    queries = {f"q{i}": f"topic {i}" for i in range(3)}
    groups = [Group(f"q{i}", (f"d{i}",), tuple(f"d{j}" for j in range(3, 8))) for i in range(3)]
    cfg = SimpleNamespace(loss="softmax", epochs=4.0, lr=5e-4, warmup=0.1, groups_per_step=2, max_len=32)
    info = finetune_cross_encoder(tiny_encoder, groups, queries, docs, ["text"], cfg, seed=0, out_dir=tmp_path)
    assert info["steps"] == 6 and (tmp_path / "train_log.jsonl").is_file()
    assert info["loss"] == "lce" and "precision" in info  # the students' training loop did it
    load_cross_encoder(tmp_path / "model")  # loads without allow_new_head: the head is saved
    cfg.loss = "bce"
    info = finetune_cross_encoder(tiny_encoder, groups, queries, docs, ["text"], cfg, seed=0, out_dir=tmp_path)
    assert np.isfinite(info["loss_last10"])
