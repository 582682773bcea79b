"""Distillation pieces on hand-made tensors and tiny models: losses, target sources, the training loop."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import make_tiny_bert
from harness.distill.groups import Group
from harness.distill.losses import InBatchContrastive, ListwiseKL, MarginMSE, MaskedLM, mask_tokens
from harness.distill.targets import MarginTargets, OnlineTargets, SelfTargets, StaticTargets
from harness.distill.trainer import Objective, make_examples, resolve_loss, train_student


# ---- losses -----------------------------------------------------------------------------------------

def test_margin_mse_is_zero_when_differences_match():
    t = torch.tensor([[3.0, 1.0, 0.5]])
    s = t + 7.0  # shifted: same differences
    assert MarginMSE("all")(s, t).item() == pytest.approx(0.0)
    assert MarginMSE("positive")(s, t).item() == pytest.approx(0.0)


def test_margin_mse_values_and_gradient_sign():
    t = torch.tensor([[2.0, 0.0, 1.0]])
    s = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    # all pairs: (1-2)^2, (1-1)^2, (0-(-1))^2 -> mean 2/3 ; positive pairs: (1-2)^2, (1-1)^2 -> 1/2
    assert MarginMSE("all")(s, t).item() == pytest.approx(2 / 3)
    assert MarginMSE("positive")(s, t).item() == pytest.approx(1 / 2)
    MarginMSE("positive")(s, t).backward()
    # the student's margin pos-neg1 (1) is below the teacher's (2): descending raises the positive
    assert s.grad[0, 0] < 0 and s.grad[0, 1] > 0


def test_listwise_kl():
    t = torch.tensor([[2.0, 0.0]])
    assert ListwiseKL()(t.clone(), t).item() == pytest.approx(0.0, abs=1e-7)
    s = torch.tensor([[0.0, 0.0]])
    p = torch.softmax(t, -1)[0]
    expected = float((p * (p.log() - math.log(0.5))).sum())
    assert ListwiseKL()(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_in_batch_contrastive_positives_on_the_diagonal_of_groups():
    scores = torch.full((2, 4), -10.0)
    scores[0, 0] = scores[1, 2] = 10.0  # group size 2: positives at columns 0 and 2
    assert InBatchContrastive()(scores, group_size=2).item() < 1e-6
    swapped = scores[:, [1, 0, 3, 2]]  # now each query's own positive scores lowest
    assert InBatchContrastive()(swapped, group_size=2).item() > 10.0


def test_mask_tokens_respects_special_tokens_and_rate():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 50))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    masked, labels = mask_tokens(ids, special, mask_id=103, vocab_size=30522, probability=0.15, generator=g)
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert 0.10 < chosen.float().mean() < 0.20
    assert (masked[chosen] == 103).float().mean() > 0.6
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    logits = torch.zeros(int(chosen.sum()), 30522)
    assert MaskedLM()(logits, labels[chosen]).item() == pytest.approx(math.log(30522), rel=1e-4)


def test_default_losses():
    d = SimpleNamespace(variant="static", loss="auto")
    assert resolve_loss("splade", d) == "mse" and resolve_loss("colbert", d) == "margin-mse"
    assert resolve_loss("splade", SimpleNamespace(variant="margin", loss="mse")) == "margin-mse"


# ---- target sources ---------------------------------------------------------------------------------

def test_static_targets_look_up_the_answer_key():
    import pandas as pd

    key = pd.DataFrame({"qid": ["q1", "q1", "q2", "q2"], "pid": ["a", "b", "a", "c"], "score": [3.0, 1.0, 2.0, 0.5],
                        "positive": [True, False, True, False]})
    t = StaticTargets(key)(["q2", "q1"], [("a", "c"), ("a", "b")], {}, torch.device("cpu"))
    assert t.tolist() == [[2.0, 0.5], [3.0, 1.0]]
    from harness.errors import ArtifactError

    with pytest.raises(ArtifactError, match="no score for"):
        StaticTargets(key)(["q1"], [("a", "zzz")], {}, torch.device("cpu"))


def test_margin_targets():
    t = MarginTargets(1.5)(["q1", "q2"], [("a", "b", "c"), ("d", "e", "f")], {}, torch.device("cpu"))
    assert t.tolist() == [[1.5, 0.0, 0.0], [1.5, 0.0, 0.0]]


class CountingTeacher:
    def __init__(self):
        self.calls = 0
        self.requests = []

    def score(self, requests):
        self.calls += 1
        self.requests.extend(requests)
        return [np.arange(len(r.doc_ids), dtype=np.float32)[::-1].copy() for r in requests]


def test_online_targets_call_the_teacher_each_time():
    teacher = CountingTeacher()
    src = OnlineTargets(teacher, pools={"q1": [("a", 9.0)]})
    t = src(["q1", "q2"], [("a", "b", "c"), ("d", "e", "f")], {"q1": "one", "q2": "two"}, torch.device("cpu"))
    assert t.tolist() == [[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]]
    src(["q1"], [("a", "b", "c")], {"q1": "one", "q2": "two"}, torch.device("cpu"))
    assert teacher.calls == 2
    assert teacher.requests[0].query == "one" and teacher.requests[0].pool == [("a", 9.0)]


def test_self_targets_are_the_larger_students_scores(tmp_path):
    from harness.students import build_student

    enc = make_tiny_bert(tmp_path / "enc", "encoder")
    big = build_student("dense", enc, {"doc_max_len": 16, "query_max_len": 8})
    texts = {"a": "alpha text", "b": "beta words", "c": "gamma"}
    t = SelfTargets(big, texts.__getitem__)(["q"], [("a", "b", "c")], {"q": "alpha"}, torch.device("cpu"))
    with torch.no_grad():
        ref = big.score_groups(big.encode_queries(["alpha"]), big.encode_docs(["alpha text", "beta words", "gamma"]))
    assert torch.allclose(t, ref)


# ---- the training loop ------------------------------------------------------------------------------

def test_make_examples_pads_short_groups():
    ex = make_examples([Group("q", ("p1", "p2"), ("n1", "n2")), Group("r", ("p",), ())], group_size=4)
    assert ex == [("q", ("p1", "n1", "n2", "n1")), ("q", ("p2", "n1", "n2", "n1"))]


def _tiny_dense(tmp_path, seed=0):
    from harness.students import build_student

    torch.manual_seed(seed)
    return build_student("dense", make_tiny_bert(tmp_path / f"enc{seed}", "encoder", seed=seed),
                         {"doc_max_len": 16, "query_max_len": 8, "pooling": "mean"})


TEXTS = {f"d{i}": f"document {i} talks about topic {i % 4} and more" for i in range(12)}
QUERIES = {f"q{i}": f"topic {i}" for i in range(4)}
EXAMPLES = [(f"q{i}", (f"d{i}", f"d{i + 4}", f"d{i + 8}")) for i in range(4)]
TRAIN = SimpleNamespace(epochs=6.0, max_steps=0, batch_queries=2, lr=5e-3, warmup=0.0, weight_decay=0.0,
                        checkpoint_every=0)
DISTILL = SimpleNamespace(variant="margin", loss="auto", pairs="positive", temperature=1.0, target_scale="none",
                          scale_a=1.0, scale_b=0.0, margin=1.0)


def test_training_reduces_the_loss_and_logs_every_step(tmp_path):
    s = _tiny_dense(tmp_path)
    train = SimpleNamespace(**{**vars(TRAIN), "epochs": 12.0})  # 24 steps: the first and last 10 apart (dropout
    info = train_student(s, EXAMPLES, QUERIES, TEXTS.__getitem__, MarginTargets(1.0), Objective("dense", DISTILL),
                         train, 0, tmp_path, tmp_path / "scratch")  # makes a tiny model's steps noisy)
    assert info["steps"] == 24 and info["loss"] == "margin-mse"
    assert info["optimizer"] == "AdamW (fused)"  # the per-tensor loop torch uses by default on the CPU is 5x slower
    rows = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert len(rows) == 24
    assert info["loss_last10"] < 0.6 * info["loss_first10"]


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    """A run stopped after its checkpoint at step 6 resumes to exactly the weights of an uninterrupted run."""
    train = SimpleNamespace(**{**vars(TRAIN), "checkpoint_every": 6})
    full = _tiny_dense(tmp_path)
    train_student(full, EXAMPLES, QUERIES, TEXTS.__getitem__, MarginTargets(1.0), Objective("dense", DISTILL),
                  train, 0, tmp_path, tmp_path / "s1")
    part = _tiny_dense(tmp_path)

    class Crash(Exception):
        pass

    def crash_after_checkpoint(student, examples, step):
        if step == 7:
            raise Crash
        return None

    with pytest.raises(Crash):
        train_student(part, EXAMPLES, QUERIES, TEXTS.__getitem__, MarginTargets(1.0), Objective("dense", DISTILL),
                      train, 0, tmp_path, tmp_path / "s2", refresh=crash_after_checkpoint)
    assert (tmp_path / "s2" / "checkpoint.pt").is_file()
    resumed = _tiny_dense(tmp_path)  # a fresh process would rebuild the student from the backbone
    info = train_student(resumed, EXAMPLES, QUERIES, TEXTS.__getitem__, MarginTargets(1.0),
                         Objective("dense", DISTILL), train, 0, tmp_path, tmp_path / "s2")
    assert info["resumed_from"] == 6
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_learned_scale_is_on_the_student_side():
    d = SimpleNamespace(**{**vars(DISTILL), "variant": "static", "loss": "mse", "target_scale": "learned"})
    obj = Objective("dense", d)
    scores = torch.tensor([[10.0, 0.0]])
    loss, _ = obj(None, None, scores, torch.tensor([[1.0, 0.0]]), 0)
    assert loss.item() == pytest.approx(((10 - 1) ** 2 + 0) / 2)
    with torch.no_grad():
        obj.alpha.fill_(0.1)
    loss, _ = obj(None, None, scores, torch.tensor([[1.0, 0.0]]), 0)
    assert loss.item() == pytest.approx(0.0)
    fixed = Objective("dense", SimpleNamespace(**{**vars(d), "target_scale": "fixed", "scale_a": 10.0}))
    assert fixed(None, None, scores, torch.tensor([[1.0, 0.0]]), 0)[0].item() == pytest.approx(0.0)


def test_dense_student_saves_in_sentence_transformers_layout(tmp_path, fp32):
    import json

    s = _tiny_dense(tmp_path)
    s.save(tmp_path / "saved")
    modules = json.loads((tmp_path / "saved" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling"]
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    ours = s.infer_docs(["document 1 talks about topic 1"])[0]
    theirs = st.encode(["document 1 talks about topic 1"])[0]
    assert np.allclose(ours, theirs, atol=1e-4)
    from harness.students import load_student

    again = load_student(tmp_path / "saved")
    assert np.allclose(again.infer_docs(["x y"])[0], s.infer_docs(["x y"])[0], atol=1e-5)


def test_contrastive_temperature_is_the_families_unless_the_recipe_sets_it():
    """temperature = 0: 0.05 for a dense student scoring by cosine (a softmax over scores in [-1, 1] at 1.0 is
    nearly flat), 1.0 for a dot-product dense student, ColBERT and SPLADE; a written value wins. The student's
    key records the resolved value, so ColBERT's and SPLADE's keys are those of the former default 1.0."""
    from harness.distill.variants import resolved
    from harness.recipe import load_recipe

    def temperature(recipe, *overrides):
        return resolved(load_recipe(recipe, list(overrides)).recipe).temperature

    assert temperature("scifact/dense-multitask") == 0.05  # all-MiniLM-L6-v2: cosine
    assert temperature("scifact/dense-multitask", 'student.dense.similarity="dot"') == 1.0
    assert temperature("scifact/colbert-multitask") == 1.0
    assert temperature("scifact/splade-multitask") == 1.0
    assert temperature("scifact/dense-multitask", "distill.multitask.temperature=0.2") == 0.2
    # the cosine student's contrastive loss separates a batch at 0.05 where it barely can at 1.0
    scores = torch.tensor([[0.9, 0.2, 0.3, 0.1], [0.3, 0.1, 0.8, 0.2]])
    assert InBatchContrastive(0.05)(scores, group_size=2) < 0.01 < 0.5 < InBatchContrastive(1.0)(scores, group_size=2)


def test_training_hands_freed_memory_back_every_ten_steps(tmp_path, monkeypatch):
    """glibc keeps what varying-length batches free: 63 SciFact steps grew the process from 2.1 to 5.4 GB
    untrimmed (harness/memory.py). The trainer trims every TRIM_EVERY_STEPS steps."""
    from harness.distill import trainer
    from harness.memory import TRIM_EVERY_STEPS

    trims = []
    monkeypatch.setattr(trainer, "release_freed_memory", lambda: trims.append(1))
    train = SimpleNamespace(**{**vars(TRAIN), "epochs": 12.0})  # 24 steps
    info = train_student(_tiny_dense(tmp_path), EXAMPLES, QUERIES, TEXTS.__getitem__, MarginTargets(1.0),
                         Objective("dense", DISTILL), train, 0, tmp_path, tmp_path / "scratch")
    assert info["steps"] == 24 and len(trims) == 24 // TRIM_EVERY_STEPS == 2


def test_the_mlm_head_reads_the_masked_positions_in_blocks_of_64_with_the_same_loss():
    from harness.distill.losses import MaskedLM
    from harness.distill.multitask import MLM_ROWS_MULTIPLE, mlm_rows

    torch.manual_seed(0)
    labels = torch.full((3, 40), -100)
    labels[torch.rand(3, 40) < 0.15] = 7
    labels.view(-1)[5] = 3
    rows, row_labels = mlm_rows(labels.reshape(-1))
    n = int((labels != -100).sum())
    assert MLM_ROWS_MULTIPLE == 64 and len(rows) == 64 > n and int((row_labels != -100).sum()) == n
    hidden = torch.randn(3 * 40, 10)
    head = torch.nn.Linear(10, 12)
    flat = labels.reshape(-1)
    exact = MaskedLM()(head(hidden[flat != -100]), flat[flat != -100])
    padded = MaskedLM()(head(hidden[rows]), row_labels)
    assert torch.allclose(exact, padded)
    assert len(mlm_rows(torch.full((70,), 1))[0]) == 128 and len(mlm_rows(torch.full((64,), 1))[0]) == 64
    assert len(mlm_rows(torch.full((9,), -100))[0]) == 0
