"""Batches padded to a multiple of 16 tokens: few distinct shapes, never past the truncation, same results."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_bert
from harness.students import build_student
from harness.students.shapes import PAD_MULTIPLE, padded_length

WORDS = ("cell membrane transport protein folding reticulum trial vitamin gene expression stem climate crop yield "
         "neural retrieval antibiotic resistance sleep memory").split()
TEXTS = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(n)) for i, n in enumerate((1, 3, 9, 17, 30, 41, 60))]


@pytest.mark.parametrize("length, cap, want", [(5, 256, 16), (16, 256, 16), (17, 256, 32), (250, 256, 256),
                                                (17, 20, 20), (30, 30, 30), (31, 30, 31)])
def test_padded_length_rounds_up_to_the_multiple_but_not_past_the_cap(length, cap, want):
    assert PAD_MULTIPLE == 16 and padded_length(length, cap) == want


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_tiny_bert(root / "enc", "encoder"), make_tiny_bert(root / "mlm", "mlm")


def students(tiny):
    enc, mlm = tiny
    base = {"query_max_len": 12, "doc_max_len": 40, "batch_size": 4}
    yield "dense", build_student("dense", enc, {**base, "pooling": "mean", "normalize": True})
    yield "splade", build_student("splade", mlm, {**base, "calibrate": "always", "init_active_terms": 50}, TEXTS)
    yield "colbert", build_student("colbert", enc, {**base, "dim": 16, "query_augment": False})


def test_every_family_pads_batches_and_gets_the_same_representations(tiny, fp32, monkeypatch):
    """fp32 (the fixture): padded and exact lengths differ by float rounding only."""
    import harness.students.base as base

    for family, student in students(tiny):
        student.eval()
        cap = 39 if family == "colbert" else 40  # ColBERT's tokenizer leaves room for its marker
        for texts in (TEXTS[:3], TEXTS[3:5], TEXTS):
            enc = (student._tokenize(texts, 40, student.doc_marker_id, False) if family == "colbert"
                   else student.tokenize(texts, 40))
            width = enc["input_ids"].shape[1] - (family == "colbert")
            assert width % PAD_MULTIPLE == 0 or width == cap, (family, width)
        with torch.no_grad():
            padded_q, padded_d = student.encode_queries(TEXTS[:3]), student.encode_docs(TEXTS[:3])
            monkeypatch.setattr(base, "pad_batch", lambda enc, *a, **k: enc)  # the exact lengths
            exact_q, exact_d = student.encode_queries(TEXTS[:3]), student.encode_docs(TEXTS[:3])
            monkeypatch.undo()
        if family == "colbert":  # token vectors: the same kept tokens; padding adds masked positions only
            assert padded_d.mask.shape[1] == 1 + 16 > exact_d.mask.shape[1]  # padding did happen
            for p, e in ((padded_q, exact_q), (padded_d, exact_d)):
                n = e.mask.shape[1]
                assert not p.mask[:, n:].any() and torch.equal(p.mask[:, :n], e.mask)
                assert torch.allclose(p.emb[:, :n][e.mask], e.emb[e.mask], atol=1e-5)
        else:
            assert torch.allclose(padded_q, exact_q, atol=1e-5) and torch.allclose(padded_d, exact_d, atol=1e-5)
            assert student.tokenize(TEXTS[:3], 40)["input_ids"].shape[1] == 16  # padding did happen
