"""Streaming: a corpus encoded and written chunk by chunk gives the index a one-shot write of the same
vectors gives (and, with a chunk as large as the corpus, the vectors of one pass: the same batches)."""

from __future__ import annotations

import json

import pytest

from harness.index.students import index_corpus, search_corpus
from harness.models import resolve_model
from harness.recipe import load_recipe
from harness.registry import INDEXES
from harness.students import build_student, student_settings


@pytest.fixture(scope="module")
def corpus(data_dir):
    from harness.data import open_dataset

    ds = open_dataset("beir/scifact/test", max_docs=60, max_queries=5)
    return [(d.doc_id, d.contents(["title", "text"])) for d in ds.docs()], ds.queries


@pytest.mark.parametrize("family", ["dense", "splade", "colbert"])
def test_chunks_write_what_one_pass_writes(family, corpus, tmp_path):
    docs, queries = corpus
    recipe = load_recipe(f"scifact/{family}-untrained").recipe
    student = build_student(family, resolve_model("minilm"), student_settings(recipe), [t for _, t in docs[:16]])
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    for d in (streamed, whole):
        d.mkdir()
    approximate = True
    a = index_corpus(family, student, iter(docs), streamed, recipe.index, 64, approximate, chunk=7)
    # the same vectors, one shot (encoded in the same chunks: a passage's vector may depend on its batch by
    # float rounding, with several threads or bf16)
    reps = [r for i in range(0, len(docs), 7) for r in student.infer_docs([t for _, t in docs[i:i + 7]], 64)]
    (whole / "doc_ids.txt").write_text("".join(f"{i}\n" for i, _ in docs))
    b = INDEXES[family].write(reps, whole, recipe.index, approximate)
    assert a["documents"] == len(docs) and (streamed / "doc_ids.txt").read_text() == (whole / "doc_ids.txt").read_text()
    for key in b:
        if not key.endswith("seconds") and key != "index_bytes":
            assert a[key] == b[key], key
    if family == "dense":
        assert (streamed / "index" / "vectors.npy").read_bytes() == (whole / "index" / "vectors.npy").read_bytes()
    elif family == "colbert":
        for name in ("doc_tokens.npy", "doc_offsets.npy"):
            assert (streamed / name).read_bytes() == (whole / name).read_bytes()
    else:
        from harness.index.impact import _load_matrix
        from harness.students.splade import flops_estimate

        (x, tx), (y, ty) = (_load_matrix(d) for d in (streamed, whole))
        assert (x != y).nnz == 0 and x.shape == y.shape == (len(docs), len(tx)) and tx == ty
        assert not list(streamed.glob("*.npz"))  # written in parts, not assembled in memory
        q_reps = student.infer_queries(list(queries.values()), 32)
        with INDEXES[family].open(streamed, recipe.index) as index:  # FLOPS from the index's term counts
            assert index.figures(q_reps)["flops"] == pytest.approx(flops_estimate(q_reps, reps), abs=1e-3)
    runs = [search_corpus(family, student, d, queries, 10, recipe.index, False, 32, approximate)[0]
            for d in (streamed, whole)]
    assert runs[0] == runs[1]
    assert not list(streamed.glob("*.rows")) and not list(streamed.rglob("*.collection"))


def test_a_chunk_as_large_as_the_corpus_encodes_as_one_pass(corpus, tmp_path):
    """The default chunk (10,000) holds SciFact's 5,183 passages whole: the batches, hence the vectors, of one
    pass."""
    import numpy as np

    docs, _ = corpus
    recipe = load_recipe("scifact/dense-untrained").recipe
    student = build_student("dense", resolve_model("minilm"), student_settings(recipe))
    index_corpus("dense", student, iter(docs), tmp_path, recipe.index, 64, False)
    one_pass = np.stack(student.infer_docs([t for _, t in docs], 64)).astype(np.float32)
    assert np.array_equal(np.load(tmp_path / "index" / "vectors.npy"), one_pass)


def test_the_compile_decision_reads_ahead_past_one_chunk_and_each_chunk_hands_memory_back(corpus, tmp_path,
                                                                                           monkeypatch):
    """Chunks smaller than the corpus size compilation pays from: the decision still sees that the corpus is
    large enough (the text of the first chunks read ahead, not their vectors); after each chunk the allocator's
    freed memory goes back (the peak RSS stays one chunk's)."""
    import harness.index.students as students

    docs, _ = corpus
    recipe = load_recipe("scifact/dense-untrained").recipe
    student = build_student("dense", resolve_model("minilm"), student_settings(recipe))
    asked, trims = [], []
    monkeypatch.setattr(students, "COMPILE_MIN_PASSAGES", 10)
    monkeypatch.setattr(students, "compile_corpus_encoder", lambda n, device, gains: asked.append(n) or False)
    monkeypatch.setattr(students, "release_freed_memory", lambda: trims.append(1))
    info = students.index_corpus("dense", student, iter(docs[:20]), tmp_path, recipe.index, 32, False, chunk=4)
    assert asked == [12]  # three chunks of 4 read ahead to reach 10, decided once
    assert info["documents"] == 20 and len(trims) == 5


def test_the_compile_policy_follows_the_corpus_size_and_the_environment(monkeypatch):
    import torch

    from harness.encoding import COMPILE_MIN_PASSAGES, compile_corpus_encoder
    from harness.errors import UserInputError

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("HARNESS_COMPILE", raising=False)
    assert compile_corpus_encoder(COMPILE_MIN_PASSAGES, cpu)
    assert not compile_corpus_encoder(COMPILE_MIN_PASSAGES - 1, cpu)  # SciFact's 5,183: compiling costs more
    assert not compile_corpus_encoder(10 * COMPILE_MIN_PASSAGES, cuda)  # measured on the CPU only
    assert not compile_corpus_encoder(COMPILE_MIN_PASSAGES, cpu, family_gains=False)  # ColBERT: not at equal quality
    monkeypatch.setenv("HARNESS_COMPILE", "on")
    assert compile_corpus_encoder(1, cpu)
    monkeypatch.setenv("HARNESS_COMPILE", "off")
    assert not compile_corpus_encoder(10 * COMPILE_MIN_PASSAGES, cpu)
    monkeypatch.setenv("HARNESS_COMPILE", "yes")
    with pytest.raises(UserInputError, match="HARNESS_COMPILE"):
        compile_corpus_encoder(1, cpu)


def test_a_failing_compile_falls_back_to_eager_with_one_warning(corpus, tmp_path, monkeypatch, caplog):
    """No C++ compiler for inductor, an unsupported op: the corpus is encoded as without compilation."""
    import contextlib

    import numpy as np

    docs, _ = corpus
    recipe = load_recipe("scifact/dense-untrained").recipe
    student = build_student("dense", resolve_model("minilm"), student_settings(recipe))

    @contextlib.contextmanager
    def broken():
        raise RuntimeError("inductor: no working C++ compiler")
        yield

    monkeypatch.setenv("HARNESS_COMPILE", "on")
    monkeypatch.setattr(student, "compiled_encoder", broken)
    with caplog.at_level("WARNING", logger="harness"):
        info = index_corpus("dense", student, iter(docs), tmp_path, recipe.index, 64, False)
    assert info["compiled"] is False and info["documents"] == len(docs)
    assert [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    one_pass = np.stack(student.infer_docs([t for _, t in docs], 64)).astype(np.float32)
    assert np.array_equal(np.load(tmp_path / "index" / "vectors.npy"), one_pass)


@pytest.mark.slow
def test_a_compiled_encoder_gives_the_eager_vectors_and_is_plain_again_after(corpus, tmp_path, monkeypatch):
    import numpy as np

    docs, _ = corpus
    recipe = load_recipe("scifact/dense-untrained").recipe
    student = build_student("dense", resolve_model("minilm"), student_settings(recipe))
    eager = np.stack(student.infer_docs([t for _, t in docs], 64)).astype(np.float32)
    monkeypatch.setenv("HARNESS_COMPILE", "on")
    info = index_corpus("dense", student, iter(docs), tmp_path, recipe.index, 64, False)
    assert info["compiled"] is True
    compiled = np.load(tmp_path / "index" / "vectors.npy")
    cos = (compiled * eager).sum(1) / np.linalg.norm(compiled, axis=1) / np.linalg.norm(eager, axis=1)
    assert cos.min() > 0.999  # bf16 kernels fused differently: not bit-equal, the same vectors
    assert type(student.backbone).__name__ != "OptimizedModule"  # restored: saving writes the plain weights
    assert not any(k.startswith("_orig_mod") for k in student.state_dict())


@pytest.mark.parametrize("name", ["HARNESS_COMPILE", "HARNESS_PRECISION"])
def test_a_mistyped_environment_setting_stops_a_run_before_any_work(name, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv(name, "fast")
    assert main(["run", "baselines/bm25-scifact", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {name}: expected {'auto, on, off' if name == 'HARNESS_COMPILE' else 'auto, fp32, bf16'}, "
                   "got 'fast'"]
