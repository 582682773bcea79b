"""The evaluation protocol: a dev split carved from training data (never trained on), students served at the
backbone's own lengths rather than their training truncation, and the dense student in its published
configuration (mean pooling, cosine for all-MiniLM-L6-v2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.artifacts import Store
from harness.context import RunContext
from harness.data import QuerySplit, dev_split, open_dataset
from harness.data.dataset import dev_query_ids
from harness.recipe import load_recipe


def _ctx(tmp_path: Path, recipe: str, *overrides: str) -> RunContext:
    loaded = load_recipe(recipe, list(overrides))
    return RunContext(loaded, Store(tmp_path), tmp_path / loaded.name)


# ---- the dev split -----------------------------------------------------------------------------------

def test_dev_split_is_disjoint_from_training_and_covers_the_split(data_dir):
    base = open_dataset("beir/scifact/train")
    train, dev = dev_split(base, 0.1, 1000)
    assert isinstance(dev, QuerySplit) and dev.id == "beir/scifact/train[dev]"
    assert len(dev.queries) == round(0.1 * len(base.queries)) == 81
    assert not set(dev.queries) & set(train.queries)
    assert set(dev.queries) | set(train.queries) == set(base.queries)
    assert set(dev.qrels) == set(dev.queries) and set(train.qrels) == set(train.queries)
    # same corpus (one BM25 / student index serves both), different topics
    assert dev.corpus_fingerprint() == train.corpus_fingerprint() == base.corpus_fingerprint()
    assert dev.topics_fingerprint() != train.topics_fingerprint()


def test_dev_membership_depends_on_the_query_id_only():
    qids = [str(i) for i in range(1000)]
    picked = dev_query_ids(qids, 0.1, 1000)
    assert len(picked) == 100
    assert dev_query_ids(list(reversed(qids)), 0.1, 1000) == picked  # not file order
    assert dev_query_ids(qids, 0.1, 30) <= picked and len(dev_query_ids(qids, 0.1, 30)) == 30  # the cap
    assert dev_query_ids(qids, 0.0, 1000) == set()
    assert dev_query_ids(qids[:3], 0.01, 1000) and len(dev_query_ids(qids[:3], 0.01, 1000)) == 1


def test_training_never_sees_a_dev_query(tmp_path, data_dir):
    """train_dataset (groups, answer key, fine-tuned teachers all read it) excludes the dev split, also when
    train.max_queries cuts a slice, and changing the recipe's seed does not move the split."""
    for seed in ("42", "7"):
        ctx = _ctx(tmp_path, "scifact/dense-static", f"seed={seed}", "train.max_queries=300")
        train, dev = ctx.stages.train_dataset(), ctx.stages.dev_dataset()
        assert len(train.queries) == 300
        assert not set(train.queries) & set(dev.queries)
        assert len(dev.queries) == 81
        if seed == "42":
            first = set(dev.queries)
        else:
            assert set(dev.queries) == first
    off = _ctx(tmp_path, "scifact/dense-static", "train.dev_fraction=0")
    assert off.stages.dev_dataset() is None and len(off.stages.train_dataset().queries) == 809


def test_eval_dev_without_a_split_is_refused_before_work(tmp_path, data_dir):
    from harness.errors import DataError
    from harness.pipeline import prepare

    ctx = _ctx(tmp_path, "baselines/bm25-scifact", "eval.dev=true", "train.dev_fraction=0")
    with pytest.raises(DataError, match=r"--set eval\.dev=true\): eval\.dev: .*dev_fraction is 0"):
        prepare(ctx)
    assert not any(tmp_path.iterdir())


# ---- evaluation lengths ------------------------------------------------------------------------------

def test_students_are_served_at_the_backbones_length(tmp_path):
    from harness.students import eval_lengths, student_settings

    for recipe, want in (("scifact/dense-static", (256, 256)), ("scifact/splade-static", (256, 256)),
                         ("scifact/colbert-static", (32, 256))):  # ColBERT queries are padded to 32
        r = load_recipe(recipe).recipe
        assert r.student.doc_max_len == 128  # the training truncation is a speed setting ...
        assert eval_lengths(r) == want, recipe  # ... not what the index reads
    r = load_recipe("scifact/dense-static", ["student.eval_doc_max_len=200", "student.eval_query_max_len=48"]).recipe
    assert eval_lengths(r) == (48, 200)
    # the published configuration of all-MiniLM-L6-v2, unless a recipe says otherwise
    assert {k: student_settings(load_recipe("scifact/dense-untrained").recipe)[k]
            for k in ("pooling", "normalize")} == {"pooling": "mean", "normalize": True}
    dot = load_recipe("scifact/dense-untrained", ['student.dense.similarity="dot"',
                                                  'student.dense.pooling="cls"']).recipe
    assert {k: student_settings(dot)[k] for k in ("pooling", "normalize")} == {"pooling": "cls", "normalize": False}


def test_the_index_reads_passages_at_the_evaluation_length(tmp_path, fp32):
    """Encoding for the index must not cut passages at the training length: a passage whose words past the
    training truncation differ must get a different vector, equal to a plain forward at full length."""
    import torch

    from harness.index.students import index_corpus
    from harness.models import resolve_model
    from harness.students import build_student

    student = build_student("dense", resolve_model("minilm"), {"pooling": "mean", "normalize": True,
                                                               "doc_max_len": 16, "query_max_len": 8})
    head = "Vitamin D deficiency is associated with an increased risk of fractures in older adults"
    texts = [head + " and the effect is strongest in women.", head + " but trials of supplements found none."]
    cfg = load_recipe("scifact/dense-static").recipe.index
    out = tmp_path / "index"
    out.mkdir()
    info = index_corpus("dense", student, zip(["a", "b"], texts), out, cfg, doc_max_len=256)
    assert info["doc_max_len"] == 256
    full = student.infer_docs(texts, 256)
    cut = student.infer_docs(texts)  # the training length (16 tokens): both passages read the same head
    assert np.allclose(cut[0], cut[1], atol=1e-6)
    assert not np.allclose(full[0], full[1], atol=1e-3)
    student.eval()  # built for training (dropout on); infer_docs switches it off itself
    with torch.inference_mode():
        enc = student.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = student.backbone(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        plain = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    assert np.allclose(np.stack(full), plain, atol=1e-5)
    assert student.doc_max_len == 16  # the training length is restored after encoding


# ---- the off-the-shelf baseline, end to end ----------------------------------------------------------

@pytest.mark.slow
def test_dense_untrained_reproduces_all_minilm_l6_v2_published_scifact(tmp_path, data_dir):
    """`harness run scifact/dense-untrained` is all-MiniLM-L6-v2 as published: MTEB's SciFact nDCG@10 0.6451
    (full test set, 300 queries, 5,183 passages; ± 0.003 covers bf16 on different CPUs). Passages cut at the
    recipe's training length (128) give 0.62 and a dot product 0.58: either regression fails here. The dev
    split is evaluated beside the test set. 326 s on the 2-core AMD EPYC, so the default run pins the same
    recipe's value on a slice (next test); this one runs with -m slow."""
    from conftest import last_json_line, run_cli

    out = run_cli("run", "scifact/dense-untrained", "--runs-dir", str(tmp_path), "--json",
                  "--set", 'eval.datasets=["beir/scifact/test"]')
    assert out.returncode == 0, out.stderr[-3000:]
    res = last_json_line(out.stdout)
    assert res["results"]["beir/scifact/test"]["nDCG@10"] == pytest.approx(0.6451, abs=0.003)
    figures = res["figures"]["beir/scifact/test"]
    assert figures["doc_max_len"] == 256 and figures["query_max_len"] == 256
    dev = res["results"]["beir/scifact/train[dev]"]
    assert res["queries"]["beir/scifact/train[dev]"] == 81 and 0.3 < dev["nDCG@10"] < 0.95


# the slice value, measured in fp32 with the commit whose full run above gave 0.6451 (2026-12-07, 2-core AMD EPYC):
# 0.8162; the same slice with passages cut at 128 tokens 0.8092, with a dot product 0.7936
SLICE_NDCG10 = 0.8162


@pytest.mark.e2e
def test_dense_untrained_gives_the_published_configuration_s_value_on_a_slice(tmp_path, data_dir):
    """The default run's guard of the published configuration (the full reproduction, 0.6451, is the slow test
    above): the same recipe on the first 100 SciFact test queries over 1,000 passages (every judged one, then
    the corpus), in fp32 so that the value holds on any CPU (bf16 moves it by up to ~0.005), gives the value
    pinned from the run that reproduced 0.6451. Passages cut at the training length, or a dot product in place
    of the cosine, fall outside the tolerance (0.8092, 0.7936). 70–75 s instead of 326 s."""
    from conftest import last_json_line, run_cli

    out = run_cli("run", "scifact/dense-untrained", "--runs-dir", str(tmp_path), "--json",
                  "--set", 'eval.datasets=["beir/scifact/test"]', "--set", "eval.max_queries=100",
                  "--set", "eval.max_docs=1000", "--set", "eval.dev=false", env={"HARNESS_PRECISION": "fp32"})
    assert out.returncode == 0, out.stderr[-3000:]
    res = last_json_line(out.stdout)
    ds = "beir/scifact/test[q100,d1000]"
    assert res["results"][ds]["nDCG@10"] == pytest.approx(SLICE_NDCG10, abs=0.003)
    assert res["figures"][ds]["doc_max_len"] == 256 and res["figures"][ds]["query_max_len"] == 256
    assert res["queries"][ds] == 100


def test_title_pseudo_queries_join_the_training_queries_and_never_the_dev_split(tmp_path, data_dir):
    """train.pseudo_queries = "titles": one query per titled passage (its title; the passage its positive),
    added after the dev split is carved and the real queries cut, in the groups' identity (topics)."""
    plain = _ctx(tmp_path, "scifact/dense-static", "train.max_queries=300")
    ctx = _ctx(tmp_path, "scifact/dense-static", "train.max_queries=300", 'train.pseudo_queries="titles"',
               "train.pseudo_max_queries=500")
    train, dev = ctx.stages.train_dataset(), ctx.stages.dev_dataset()
    base = plain.stages.train_dataset()
    assert len(train.queries) == 300 + 500 and set(base.queries) < set(train.queries)
    pseudo = [q for q in train.queries if q.startswith("title:")]
    assert len(pseudo) == 500 and not set(train.queries) & set(dev.queries)
    docs = train.doc_store()
    for q in pseudo[:20]:
        (doc_id, rel), = train.qrels[q].items()
        assert rel == 1 and train.queries[q] == docs[doc_id].title.strip() and q == f"title:{doc_id}"
    assert train.topics_fingerprint() != base.topics_fingerprint()
    assert train.corpus_fingerprint() == base.corpus_fingerprint()
    full = _ctx(tmp_path, "scifact/dense-static", 'train.pseudo_queries="titles"').stages.train_dataset()
    assert len([q for q in full.queries if q.startswith("title:")]) == sum(1 for d in docs.values() if d.title.strip())
