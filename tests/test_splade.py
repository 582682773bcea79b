"""SPLADE student: representation, sparse start, FLOPS, the vocabulary max-pool, the impact index."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import make_tiny_bert, write_impact_index
from harness.distill.losses import FLOPS, PointwiseMSE, flops_weight
from harness.students import build_student, load_student
from harness.students.maxpool import vocab_max_pool

TEXTS = ["the cell membrane regulates transport", "protein folding in the endoplasmic reticulum",
         "a randomized trial of vitamin d", "gene expression in stem cells", "climate and crop yields",
         "neural networks for retrieval", "antibiotic resistance genes spread", "sleep and memory consolidation"]


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("m") / "tiny-mlm", "mlm", hidden=32, layers=2)


def splade(path, **settings):
    base = {"query_max_len": 16, "doc_max_len": 32, "batch_size": 4, "calibrate": "always",
            "init_active_terms": 50}
    return build_student("splade", path, {**base, **settings}, TEXTS)


def test_representation_shape_and_sparsity(tiny_mlm):
    s = splade(tiny_mlm)
    q = s.encode_queries(TEXTS[:2])
    d = s.encode_docs(TEXTS)
    assert q.shape == (2, 30522) and d.shape == (8, 30522)
    assert (d >= 0).all()  # log(1 + ReLU(.))
    active = (d > 0).sum(-1).float()
    assert 10 < active.mean() < 150  # the calibrated sparse start (target 50 on these texts)
    special = s.tokenizer.all_special_ids
    assert (d[:, special] == 0).all()  # [CLS], [SEP], … are never terms
    scores = s.score_groups(q, d)
    assert scores.shape == (2, 4)
    assert torch.allclose(scores[1], (q[1] * d[4:8]).sum(-1))
    assert s.score_all(q, d).shape == (2, 8)


def test_calibration_hits_the_target(tiny_mlm):
    for target in (20, 200):
        s = splade(tiny_mlm, init_active_terms=target)
        with torch.no_grad():
            active = (s.encode_docs(TEXTS) > 0).sum(-1).float().mean()
        assert abs(float(active) - target) / target < 0.25


def test_a_backbone_without_mlm_head_gets_one_from_its_embeddings(tmp_path, caplog):
    enc = make_tiny_bert(tmp_path / "enc", "encoder")
    with caplog.at_level("INFO", logger="harness"):
        s = build_student("splade", enc, {"doc_max_len": 32, "init_active_terms": 40}, TEXTS)  # calibrate=auto
    assert "no MLM head" in caplog.text and "calibrated" in caplog.text
    head = s.mlm.cls.predictions
    assert head.decoder.weight.data_ptr() == s.mlm.get_input_embeddings().weight.data_ptr()  # tied
    assert torch.allclose(head.transform.dense.weight, torch.eye(32))


def test_a_splade_cut_to_fewer_layers_is_recalibrated(tiny_mlm, caplog):
    settings = {"doc_max_len": 32, "init_active_terms": 30}  # calibrate = "auto"
    with caplog.at_level("INFO", logger="harness"):
        build_student("splade", tiny_mlm, settings, TEXTS)
    assert "calibrated" not in caplog.text  # its own head, every layer: left as it was trained
    caplog.clear()
    with caplog.at_level("INFO", logger="harness"):
        cut = build_student("splade", tiny_mlm, {**settings, "layers": 1}, TEXTS)
    assert "the head now reads layer 1 of 2" in caplog.text
    with torch.no_grad():
        active = float((cut.encode_docs(TEXTS) > 0).sum(-1).float().mean())
    assert abs(active - 30) / 30 < 0.25
    caplog.clear()
    with caplog.at_level("INFO", logger="harness"):
        build_student("splade", tiny_mlm, {**settings, "layers": 1, "calibrate": "never"}, TEXTS)
    assert "calibrated" not in caplog.text


def test_vocab_max_pool_matches_the_naive_path():
    torch.manual_seed(0)
    h = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(40, 16, dtype=torch.float64, requires_grad=True)
    c = torch.randn(40, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 7)
    mask[1, 4:] = 0

    def naive(h, w, c):
        logits = (h @ w.T + c).masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        return logits.max(dim=1).values

    weights = torch.arange(40, dtype=torch.float64)
    grads = []
    for f in (naive, lambda h, w, c: vocab_max_pool(h, mask, w, c)):
        loss = (torch.log1p(torch.relu(f(h, w, c))) * weights).sum()
        grads.append(torch.autograd.grad(loss, (h, w, c)))
    for a, b in zip(*grads):
        assert torch.allclose(a, b)
    assert torch.autograd.gradcheck(lambda h, w, c: vocab_max_pool(h, mask, w, c), (h, w, c))


def test_vocab_max_pool_inference_path_and_bf16_autocast():
    """Without gradients the pool keeps no arg-max but gives the same values; under bf16 autocast the logits
    stay in bf16 (no fp32 copy of every (b, t, j) logit) and the output is fp32, close to the fp32 result."""
    torch.manual_seed(1)
    h, w, c = torch.randn(4, 9, 32), torch.randn(50, 32) * 0.3, torch.randn(50)
    mask = torch.ones(4, 9)
    mask[2, 3:] = 0
    tracked = vocab_max_pool(h.requires_grad_(), mask, w, c).detach()
    with torch.inference_mode():
        plain = vocab_max_pool(h.detach(), mask, w, c)
        naive = (h.detach() @ w.T + c).masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = vocab_max_pool(h.detach(), mask, w, c)
    assert torch.equal(tracked, plain)
    assert torch.allclose(plain, naive, atol=1e-5)
    assert low.dtype == torch.float32 and torch.allclose(low, naive, atol=0.1) and not torch.equal(low, naive)


def test_gradients_flow_and_save_load_round_trip(tiny_mlm, tmp_path):
    s = splade(tiny_mlm)
    loss = s.score_groups(s.encode_queries(TEXTS[:2]), s.encode_docs(TEXTS)).sum()
    loss.backward()
    grads = [p.grad for p in s.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    embed = s.mlm.get_input_embeddings().weight.grad
    assert embed is not None and embed.abs().sum() > 0
    s.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "harness_student.json").read_text())["family"] == "splade"
    from transformers import AutoModelForMaskedLM

    AutoModelForMaskedLM.from_pretrained(tmp_path / "saved")  # the layout naver/splade and SparseEncoder load
    again = load_student(tmp_path / "saved")
    with torch.no_grad():
        assert torch.allclose(again.encode_docs(TEXTS), s.encode_docs(TEXTS), atol=1e-5)


def test_saved_folder_encodes_in_sparse_encoder_as_the_harness_does(tiny_mlm, tmp_path, fp32):
    """A tool that knows nothing of the harness's term mask (sentence-transformers' SparseEncoder) activates the
    same terms with the same weights: the saved output bias keeps special tokens negative, and the folder says
    how many tokens to read."""
    from harness.students.splade import SPECIAL_BIAS

    s = splade(tiny_mlm).eval()
    special = s.tokenizer.all_special_ids
    with torch.no_grad():  # special tokens' logits positive, as the trained MiniLM student's [CLS] is
        s.mlm.cls.predictions.bias[special] = 5.0
        raw = s.max_logits(s.tokenize(TEXTS, 32))
    assert (raw[:, special] > 0).all() and (s.encode_docs(TEXTS)[:, special] == 0).all()  # masked by the harness
    bias_before = s.mlm.cls.predictions.bias.detach().clone()
    s.save(tmp_path / "saved")
    assert torch.equal(s.mlm.cls.predictions.bias, bias_before)  # the student in memory is left as it was
    from safetensors.torch import load_file

    saved_bias = load_file(str(tmp_path / "saved" / "model.safetensors"))["cls.predictions.bias"]
    assert (saved_bias[special] == SPECIAL_BIAS).all()
    keep = torch.ones_like(saved_bias, dtype=torch.bool)
    keep[special] = False
    assert torch.equal(saved_bias[keep], bias_before[keep])
    assert json.loads((tmp_path / "saved" / "sentence_bert_config.json").read_text())["max_seq_length"] == 32
    st = pytest.importorskip("sentence_transformers")
    if not hasattr(st, "SparseEncoder"):
        pytest.skip(f"sentence-transformers {st.__version__} has no SparseEncoder")
    model = st.SparseEncoder(str(tmp_path / "saved"), device="cpu")
    assert model.max_seq_length == 32
    theirs = model.encode_document(TEXTS, convert_to_tensor=True).to_dense().float()
    ours = s.encode_docs(TEXTS).detach()
    assert torch.equal(theirs > 0, ours > 0) and torch.allclose(theirs, ours, atol=1e-5)


def test_flops_loss_and_ramp():
    reps = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert FLOPS()(reps).item() == pytest.approx(2.0 ** 2 + 0 + 1.0 ** 2)
    assert flops_weight(0.5, 0, 10) == 0 and flops_weight(0.5, 5, 10) == pytest.approx(0.125)
    assert flops_weight(0.5, 20, 10) == 0.5 and flops_weight(0.5, 3, 0) == 0.5


def _short_training(student, lam: float, epochs: float, lr: float, weight_decay: float = 0.0,
                    learning_rates=()) -> None:
    """Train ``student`` in place on four tiny queries (MSE to a margin of 1, FLOPS weight ``lam``)."""
    from harness.distill.targets import MarginTargets
    from harness.distill.trainer import Objective, train_student

    distill = SimpleNamespace(variant="static", loss="mse", pairs="all", temperature=1.0, target_scale="none",
                              scale_a=1.0, scale_b=0.0, margin=1.0)
    train = SimpleNamespace(epochs=epochs, max_steps=0, batch_queries=2, lr=lr, warmup=0.0,
                            weight_decay=weight_decay, checkpoint_every=0)
    queries = {f"q{i}": TEXTS[i][:20] for i in range(4)}
    examples = [(f"q{i}", (f"d{i}", f"d{(i + 1) % 8}")) for i in range(4)]
    docs = {f"d{i}": t for i, t in enumerate(TEXTS)}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        train_student(student, examples, queries, docs.__getitem__, MarginTargets(1.0),
                      Objective("splade", distill, ("flops", lam, lam, 0.0)), train, 0, Path(tmp),
                      Path(tmp) / "scratch", learning_rates=learning_rates)


def _train_avg_terms(path, lam: float) -> float:
    torch.manual_seed(0)
    s = splade(path, init_active_terms=200)
    _short_training(s, lam, epochs=20.0, lr=1e-3)
    with torch.no_grad():
        return float((s.encode_docs(TEXTS) > 0).sum(-1).float().mean())


def test_raising_flops_lowers_the_number_of_active_terms(tiny_mlm):
    low, high = _train_avg_terms(tiny_mlm, 0.0), _train_avg_terms(tiny_mlm, 5.0)
    assert high < 0.5 * low, (low, high)


def test_impact_index_round_trip(tmp_path):
    """Known weights in, the expected order and (de-quantised) scores out; exact search agrees."""
    from harness.index.impact import ImpactIndex, ImpactSearcher

    docs = {"d1": {"apple": 1.0, "pie": 0.5}, "d2": {"apple": 0.2, "tart": 2.0}, "d3": {"banana": 1.5},
            "d4": {"pie": 1.2, "tart": 0.3}}
    write_impact_index(tmp_path, docs)
    queries = {"q1": {"apple": 1.0, "pie": 0.5}, "q2": {"tart": 1.0}, "q3": {"banana": 0.25}}
    run = ImpactSearcher(tmp_path / "index", 100).search(queries, k=10)
    expect = {"q1": [("d1", 1.25), ("d4", 0.6), ("d2", 0.2)], "q2": [("d2", 2.0), ("d4", 0.3)],
              "q3": [("d3", 0.375)]}
    for qid, hits in expect.items():
        assert [d for d, _ in run[qid]] == [d for d, _ in hits]
        assert [s for _, s in run[qid]] == pytest.approx([s for _, s in hits], abs=2e-2)
    # a query whose weights all quantise to 0 (or a SPLADE that gave it no term) matches nothing, and does not
    # take the other queries down with it (Lucene's batch search fails on an empty query)
    searcher = ImpactSearcher(tmp_path / "index", 100)
    mixed = searcher.search({"q1": queries["q1"], "empty": {}, "tiny": {"apple": 0.001}}, k=10)
    assert mixed["empty"] == [] and mixed["tiny"] == [] and [d for d, _ in mixed["q1"]] == ["d1", "d4", "d2"]
    assert searcher.search({"empty": {}, "tiny": {"apple": 0.001}}, k=10) == {"empty": [], "tiny": []}

    assert len(searcher.latencies({"empty": {}}, k=10)) == 1
    ids = list(docs)
    exact = ImpactIndex.exhaustive([queries[q] for q in expect], list(docs.values()), k=10)
    for hits_exact, hits in zip(exact, expect.values()):
        assert [ids[i] for i, _ in hits_exact] == [d for d, _ in hits]  # passages sharing no term: left out
        assert [s for _, s in hits_exact] == pytest.approx([s for _, s in hits], abs=1e-6)


def test_a_query_with_more_terms_than_lucene_s_default_clause_limit(tmp_path):
    """A barely sparsified SPLADE (untrained, or a long expanded query) can give a query over 1,024 terms, one
    Lucene clause each: the search must answer it, not fail the whole batch (TooManyClauses)."""
    from harness.index.impact import ImpactSearcher

    terms = [f"t{i}" for i in range(3000)]
    docs = {"wide": {t: 0.5 for t in terms}, "narrow": {"t1": 2.0}}
    write_impact_index(tmp_path, docs)
    run = ImpactSearcher(tmp_path / "index", 100).search({"q": {t: 1.0 for t in terms}, "r": {"t1": 1.0}}, k=10)
    assert [d for d, _ in run["q"]] == ["wide", "narrow"] and [d for d, _ in run["r"]] == ["narrow", "wide"]


def test_flops_estimate():
    from harness.students.splade import flops_estimate

    q = [{"a": 1.0}, {"a": 1.0, "b": 1.0}]
    d = [{"a": 1.0}, {"b": 1.0}, {"c": 1.0}, {"a": 1.0}]
    # p_q(a)=1, p_q(b)=0.5; p_d(a)=0.5, p_d(b)=0.25 -> 1*0.5 + 0.5*0.25
    assert flops_estimate(q, d) == pytest.approx(0.625)


def test_pointwise_mse():
    assert PointwiseMSE()(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])).item() == pytest.approx(2.5)
    assert np.isfinite(PointwiseMSE()(torch.zeros(2, 3), torch.ones(2, 3)).item())


def test_exact_sparse_matrix_is_written_in_parts_and_an_older_single_file_still_reads(tmp_path):
    """The unquantised weights go to disk chunk by chunk (three .npy files, read memory-mapped); an index
    written before streaming (one ``doc_weights.npz``) reads the same matrix."""
    import json

    from scipy import sparse

    from harness.index.impact import CSR_FILES, ImpactIndex, _load_matrix
    from harness.recipe import load_recipe

    cfg = load_recipe("scifact/splade-untrained").recipe.index
    docs = [{"apple": 1.0, "pie": 0.5}, {"apple": 0.2, "tart": 2.0}, {"banana": 1.5}, {"pie": 1.2, "tart": 0.3}]
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir(), old.mkdir()
    writer = ImpactIndex.writer(new, cfg, approximate=False)
    for i in range(0, 4, 3):  # chunks of 3 and 1
        writer.add(docs[i:i + 3])
    info = writer.finish()
    assert info["max_doc_terms"] == 2 and all((new / f).is_file() for f in CSR_FILES.values())
    matrix, terms = _load_matrix(new)
    assert terms == ["apple", "pie", "tart", "banana"] and matrix.shape == (4, 4)
    assert matrix.toarray() == pytest.approx(np.array([[1.0, 0.5, 0, 0], [0.2, 0, 2.0, 0], [0, 0, 0, 1.5],
                                                       [0, 1.2, 0.3, 0]]), abs=1e-7)
    sparse.save_npz(old / "doc_weights.npz", matrix.copy())  # the layout of the indexes already in caches
    (old / "terms.json").write_text(json.dumps(terms))
    queries = [{"apple": 1.0, "pie": 0.5}, {"tart": 1.0}]
    hits = [ImpactIndex.open(d, cfg).exact(queries, k=10) for d in (new, old)]
    assert hits[0] == hits[1] and [i for i, _ in hits[0][1]] == [1, 3]


def _bias_shift(path, learning_rates) -> "tuple[float, float]":
    """(largest change of the vocabulary bias, largest change of the encoder's weights) over a short training."""
    torch.manual_seed(0)
    s = splade(path, init_active_terms=200)
    bias0 = s.vocab_bias().detach().clone()
    enc0 = {n: p.detach().clone() for n, p in s.encoder().named_parameters()}
    _short_training(s, 0.01, epochs=6.0, lr=1e-4, weight_decay=0.01, learning_rates=learning_rates(s))
    enc = max(float((p.detach() - enc0[n]).abs().max()) for n, p in s.encoder().named_parameters())
    return float((s.vocab_bias().detach() - bias0).abs().max()), enc


def test_the_vocabulary_bias_trains_at_its_own_learning_rate(tiny_mlm):
    plain_bias, plain_enc = _bias_shift(tiny_mlm, lambda s: [])
    own_bias, own_enc = _bias_shift(tiny_mlm, lambda s: [([s.vocab_bias()], 1e-2)])
    # Adam moves a parameter ~lr a step: 12 steps at 1e-4 against 1e-2 (100x) for the bias alone
    assert plain_bias < 12 * 1e-4 * 1.5 and own_bias > 20 * plain_bias, (plain_bias, own_bias)
    assert own_enc < 12 * 1e-4 * 1.5 and plain_enc < 12 * 1e-4 * 1.5  # the encoder keeps train.lr


def test_bias_lr_is_a_training_setting_in_the_student_key_only_when_set():
    from harness.recipe import load_recipe
    from harness.students import student_settings
    from harness.students.families import family_of

    plain = load_recipe("scifact/splade-static").recipe
    fast = load_recipe("scifact/splade-static", ["student.splade.bias_lr=0.01"]).recipe
    fam = family_of(plain)
    assert "bias_lr" not in fam.student_key(plain)  # students trained before the setting keep their key
    assert fam.student_key(fast)["bias_lr"] == 0.01
    assert student_settings(plain) == student_settings(fast)  # not a model setting: the saved student is alike
    s = SimpleNamespace(vocab_bias=lambda: "bias")
    assert fam.learning_rates(plain, s) == [] and fam.learning_rates(fast, s) == [(["bias"], 0.01)]


CORPUS = ["suboptimal nutrition and premature death", "Suboptimal dosing of antibiotics",
          "progenitors divide; progenitors differentiate", "the proliferative capacity of progenitors",
          "a zzqvx assay", "nutrition in the elderly"]


def test_domain_words_are_corpus_words_the_tokenizer_cuts_in_at_least_two_passages(tiny_mlm):
    from harness.students.splade import domain_words

    tok = splade(tiny_mlm).tokenizer
    words = domain_words(tok, iter(CORPUS), 10)
    # in 2 passages each (case folded by the uncased tokenizer), cut into pieces; "nutrition" is one token
    # already, "zzqvx" and "proliferative" are in one passage only
    assert words == ["progenitors", "suboptimal"]
    assert all(len(tok.tokenize(w)) >= 2 for w in words)
    assert domain_words(tok, iter(CORPUS), 1) == ["progenitors"]  # most passages first, then alphabetical
    assert domain_words(tok, iter(CORPUS), 10, min_df=1)[:2] == ["progenitors", "suboptimal"]
    assert "zzqvx" in domain_words(tok, iter(CORPUS), 10, min_df=1)
    assert domain_words(tok, iter(CORPUS), 10, max_docs=2) == ["suboptimal"]  # only the passages read


def test_domain_words_need_a_fast_tokenizer_and_say_so():
    from transformers.models import bert

    from harness.errors import ModelError
    from harness.models import minilm_path
    from harness.students.splade import domain_words

    # the pure-Python WordPiece: BertTokenizerLegacy in transformers 5, BertTokenizer before
    slow = getattr(bert, "BertTokenizerLegacy", bert.BertTokenizer).from_pretrained(minilm_path())
    assert not slow.is_fast
    with pytest.raises(ModelError, match=r"^student\.splade\.vocab_words: BertTokenizer\w* has no fast"):
        domain_words(slow, iter(CORPUS), 10)


def test_domain_words_become_one_term_each_and_survive_save_and_load(tiny_mlm, tmp_path):
    from harness.students.splade import add_domain_words

    s = splade(tiny_mlm)
    emb = s.mlm.get_input_embeddings().weight
    size, pieces = emb.shape[0], s.tokenizer.convert_tokens_to_ids(s.tokenizer.tokenize("suboptimal"))
    expected = emb[pieces].detach().mean(0)
    assert add_domain_words(s, ["suboptimal", "progenitors"]) == 2
    assert add_domain_words(s, ["suboptimal"]) == 0  # already a term
    assert s.tokenizer.tokenize("Suboptimal nutrition; suboptimality") == (
        ["suboptimal", "nutrition", ";"] + s.tokenizer.tokenize("suboptimality"))  # whole words only
    new_id = s.tokenizer.convert_tokens_to_ids("suboptimal")
    emb = s.mlm.get_input_embeddings().weight
    assert new_id == size and emb.shape[0] == size + 2
    assert torch.allclose(emb[new_id], expected)  # the mean of its pieces
    assert s.mlm.cls.predictions.decoder.weight is emb  # still tied: the new row is also the term's output row
    bias = s.vocab_bias()
    assert bias.shape[0] == size + 2 and torch.allclose(bias[new_id], bias[:size][s.term_mask[:size].bool()].mean())
    assert s.term_mask.shape[0] == size + 2 and s.term_mask[size:].eq(1).all()
    assert s.vocab[new_id] == "suboptimal"
    with torch.no_grad():
        d = s.encode_docs(CORPUS)
    assert d.shape == (len(CORPUS), size + 2)
    s.save(tmp_path / "saved")
    again = load_student(tmp_path / "saved")
    assert again.tokenizer.tokenize("Suboptimal") == ["suboptimal"]
    with torch.no_grad():
        assert torch.allclose(again.encode_docs(CORPUS), d, atol=1e-5)


def test_vocab_words_is_a_setting_of_the_student_only_when_set():
    from harness.recipe import load_recipe
    from harness.students import student_settings

    plain = load_recipe("scifact/splade-static").recipe
    domain = load_recipe("scifact/splade-static", ["student.splade.vocab_words=2000"]).recipe
    assert "vocab_words" not in student_settings(plain)  # students built before the setting keep their key
    assert student_settings(domain)["vocab_words"] == 2000  # a different student: another stage
    with pytest.raises(Exception, match="vocab_words"):
        load_recipe("scifact/splade-static", ["student.splade.vocab_words=-1"])


def test_the_family_adapts_a_student_to_its_corpus_only_when_asked(tiny_mlm, caplog):
    from harness.recipe import load_recipe
    from harness.students.families import family_of

    plain = load_recipe("scifact/splade-static").recipe
    domain = load_recipe("scifact/splade-static", ["student.splade.vocab_words=5"]).recipe
    s = splade(tiny_mlm)
    size = s.term_mask.shape[0]
    assert family_of(plain).adapt(s, plain, iter(CORPUS)) == {} and s.term_mask.shape[0] == size
    with caplog.at_level("INFO", logger="harness"):
        assert family_of(domain).adapt(s, domain, iter(CORPUS)) == {"vocab_words_added": 2}
    assert "2 domain words of the training corpus are vocabulary terms (2 new: progenitors, suboptimal" in caplog.text
    assert s.term_mask.shape[0] == size + 2
    # a student that has them (a saved domain student a self-distilled one starts from) gets no others
    assert family_of(domain).adapt(s, domain, iter(CORPUS)) == {"vocab_words_added": 0}
    assert s.term_mask.shape[0] == size + 2
