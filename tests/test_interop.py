"""The anchors load the harness's students and score as the harness does (``pytest -m interop``; ``tox -e interop``).

For each family a student is trained by the harness itself (``harness run scifact/<family>-static`` on a
SciFact slice: 32 training queries, one epoch, 4 steps; fp32 throughout, ``HARNESS_PRECISION=fp32``), searched
exhaustively over 100 SciFact passages with the 20 first test queries, then taken out with ``harness export``.
The exported folder is then loaded the way its model card says — the card's own code block is run — and:

* ColBERT in PyLate (``models.ColBERT`` + ``rank.rerank`` / ``scores.colbert_scores``) and in
  sentence-transformers' ``MultiVectorEncoder`` (6.x only; 5.3, which PyLate 1.6 pins, has none);
* SPLADE in sentence-transformers' ``SparseEncoder``: the same active terms, the same weights;
* dense in ``SentenceTransformer``: cosine ≥ 0.999 between its vector and the harness's, text by text;

give (1) the harness's representations (loaded in this process, fp32) and (2) the scores in the run's own
TREC file, for all 20 × 100 pairs, and rank the passages as the run did (up to ties within the tolerance).
Tolerances: both sides are fp32, so representations agree to 1e-5 (measured: exactly) and scores to 1e-4
relative; ColBERT's run scores come from token vectors the harness stores as float16 for exact MaxSim, which
moves a score by at most (query tokens) × 2⁻¹¹ (each token's best similarity moves by at most the unit
vector's rounding error, 2⁻¹¹ relative). The exported TREC run is read back by ranx (``Run.from_file``, and
its nDCG@10 against the run's own) and PyTerrier (``pt.io.read_results``; no JVM needed).

Each anchor test skips when its library is missing: the interop environment (tox.ini ``[testenv:interop]``,
PyLate's pins: sentence-transformers 5.3) has all but ``MultiVectorEncoder``; the default environment
(sentence-transformers 6.x) has no PyLate, ranx or PyTerrier. ``HARNESS_INTEROP_STUDENTS=DIR`` keeps the
exported students (and the runs' stage cache) in DIR, and a later session — in either environment — uses
those instead of training (CI trains them once in the default environment, then loads them in both; delete
DIR to train afresh).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import last_json_line, run_cli

pytestmark = pytest.mark.interop

DATASET, QUERIES, DOCS = "beir/scifact/test", 20, 100
SLICE = ["--set", "train.max_queries=32", "--set", "train.epochs=1.0", "--set", "student.doc_max_len=96",
         "--set", f"eval.max_queries={QUERIES}", "--set", f"eval.max_docs={DOCS}", "--set", "eval.dev=false",
         "--set", f'eval.datasets=["{DATASET}"]', "--set", 'index.search="exact"']
FP16 = 2.0 ** -11  # float16's relative rounding error (10-bit mantissa)


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> Path:
    keep = os.environ.get("HARNESS_INTEROP_STUDENTS")
    return Path(keep) if keep else tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="module")
def texts(data_dir):
    from harness.data import open_dataset

    ds = open_dataset(DATASET, max_queries=QUERIES, max_docs=DOCS)
    queries = dict(ds.queries)
    docs = {d.doc_id: d.contents(("title", "text")) for d in ds.docs()}  # the recipes' data.doc_fields
    assert len(queries) == QUERIES and len(docs) == DOCS
    return SimpleNamespace(qids=list(queries), dids=list(docs), queries=list(queries.values()),
                           docs=list(docs.values()), qrels=ds.qrels)


@pytest.fixture(scope="module")
def trained(students, data_dir):
    """family -> the exported student of a real (short) training run, trained on first use (or one exported
    into $HARNESS_INTEROP_STUDENTS by an earlier session)."""
    done: dict[str, SimpleNamespace] = {}

    def get(family: str) -> SimpleNamespace:
        if family not in done:
            done[family] = _exported(family, students)
        return done[family]

    return get


def _exported(family: str, students: Path) -> SimpleNamespace:
    from harness.evaluate import read_trec

    dest = students / family
    if not (dest / "payload.json").is_file():
        out = run_cli("run", f"scifact/{family}-static", "--runs-dir", str(students / "runs"), "--json", *SLICE,
                      env={"HARNESS_PRECISION": "fp32"})
        assert out.returncode == 0, out.stderr[-3000:]
        payload = last_json_line(out.stdout)
        exported = run_cli("export", payload["run_dir"], "--to", str(dest))
        assert exported.returncode == 0, exported.stderr[-3000:]
        (dest / "payload.json").write_text(json.dumps(payload))
    payload = json.loads((dest / "payload.json").read_text())
    assert payload["training"]["steps"] >= 4 and payload["training"]["precision"] == "fp32"
    (ds,) = payload["results"]
    figures = payload["figures"][ds]
    assert figures["search"] == "exact"
    (trec,) = (dest / "runs").glob("*.trec")
    run = read_trec(trec)
    assert len(run) == QUERIES
    return SimpleNamespace(family=family, model=dest / "model", payload=payload, ds=ds, trec=trec, run=run,
                           query_len=figures["query_max_len"], doc_len=figures["doc_max_len"],
                           card=(dest / "model" / "README.md").read_text())


@pytest.fixture
def harness_side(fp32, texts):
    """The harness's own representations of the slice, from the exported folder, at the served lengths (fp32)."""
    from harness.students import load_student

    def encode(student: SimpleNamespace):
        model = load_student(student.model)
        return (model.infer_queries(texts.queries, student.query_len), model.infer_docs(texts.docs, student.doc_len),
                model)

    return encode


def card_model(student: SimpleNamespace):
    """Run the model card's loading code as written; its ``model``."""
    (code,) = re.findall(r"## Use it[^\n]*\n\n```python\n(.*?)```", student.card, flags=re.S)
    namespace: dict = {}
    exec(compile(code, f"{student.model}/README.md", "exec"), namespace)  # noqa: S102 (our own card)
    return namespace["model"]


def card_st_model(student: SimpleNamespace, cls):
    """The card's sentence-transformers ``model`` (an instance of ``cls``), on the CPU; the exported folder
    loaded with no arguments reads passages at the length the run served them."""
    model = card_model(student)
    assert isinstance(model, cls)
    model.to("cpu")
    assert cls(str(student.model), device="cpu").max_seq_length == student.doc_len
    return model


def compare_scores(student: SimpleNamespace, texts, scores: np.ndarray, tol: float, relative: bool = False) -> dict:
    """The anchor's (queries × passages) ``scores`` against the run file's, pair by pair; and its ranking against
    the run's: walking down the anchor's order, no passage may score more in the run than one ranked above it,
    beyond the tolerance twice (two scores' errors)."""
    col = {d: i for i, d in enumerate(texts.dids)}
    diffs, rel, pairs, worst_order = [], [], 0, 0.0
    for qi, qid in enumerate(texts.qids):
        ours = dict(student.run[qid])
        for d, s in ours.items():
            diffs.append(abs(scores[qi, col[d]] - s))
            rel.append(diffs[-1] / max(1.0, abs(s)))
            pairs += 1
        order = sorted(ours, key=lambda d: -scores[qi, col[d]])
        floor = np.minimum.accumulate([ours[d] for d in order])
        worst_order = max(worst_order, float(max(ours[d] - f for d, f in zip(order[1:], floor[:-1])) if len(order) > 1
                                             else 0.0))
    err = max(rel) if relative else max(diffs)
    assert pairs >= QUERIES * 10, pairs  # the run scored the slice (exact search: every passage it matched)
    assert err <= tol, (f"{student.family}: scores differ from the run's by up to {err:.3g} "
                        f"({'relative' if relative else 'absolute'}; tolerance {tol:.3g})")
    assert worst_order <= 2 * tol, f"{student.family}: the anchor ranks passages otherwise than the run ({worst_order:.3g})"
    return {"pairs": pairs, "max_abs_diff_vs_run": float(max(diffs)), "max_rel_diff_vs_run": float(max(rel)),
            "order_violation": worst_order}


def report(what: str, **figures) -> None:
    print(f"interop: {what}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in figures.items()))


def weights_moved(student: SimpleNamespace) -> float:
    """How far the trained student's transformer moved from the backbone it started from (max abs difference
    over the weights they share)."""
    from safetensors.numpy import load_file

    from harness.models import minilm_path

    ours = load_file(str(student.model / "model.safetensors"))
    base = load_file(str(minilm_path() / "model.safetensors"))
    names = [(n, n.split("bert.", 1)[-1]) for n in ours]
    shared = [(a, b) for a, b in names if b in base and ours[a].shape == base[b].shape]
    assert len(shared) > 50, sorted(ours)[:10]
    moved = float(max(np.abs(ours[a].astype(np.float64) - base[b]).max() for a, b in shared))
    assert moved > 1e-5, f"{student.family}: the trained student still has the backbone's weights"
    return moved


# ---- ColBERT ----------------------------------------------------------------------------------------------

def _maxsim(q: list, d: list) -> np.ndarray:
    return np.array([[float((qv.astype(np.float64) @ dv.T.astype(np.float64)).max(axis=1).sum()) for dv in d]
                     for qv in q])


def _same_vectors(ours: list, theirs: list) -> float:
    theirs = [np.asarray(t.cpu() if hasattr(t, "cpu") else t, dtype=np.float32) for t in theirs]
    assert [a.shape for a in ours] == [b.shape for b in theirs]  # the same kept tokens, text by text
    return float(max(np.abs(a - b).max() for a, b in zip(ours, theirs)))


def test_colbert_in_pylate(trained, texts, harness_side):
    pylate = pytest.importorskip("pylate", reason="PyLate is not installed (the interop environment has it: "
                                                  "tox -e interop)")
    from pylate import rank, scores as pylate_scores

    student = trained("colbert")
    hq, hd, _ = harness_side(student)
    model = card_model(student)
    assert isinstance(model, pylate.models.ColBERT)
    plain = pylate.models.ColBERT(model_name_or_path=str(student.model), device="cpu")  # the folder alone
    assert (plain.query_length, plain.document_length) == (student.query_len, student.doc_len)
    qe = model.encode(texts.queries, is_query=True)
    de = model.encode(texts.docs, is_query=False)
    vec = max(_same_vectors(hq, qe), _same_vectors(hd, de))
    assert vec <= 1e-5, vec
    # rank.rerank: every query against the 100 passages
    ranked = rank.rerank(documents_ids=[texts.dids] * QUERIES, queries_embeddings=qe,
                         documents_embeddings=[de] * QUERIES)
    col = {d: i for i, d in enumerate(texts.dids)}
    by_rank = np.zeros((QUERIES, DOCS))
    for qi, row in enumerate(ranked):
        for hit in row:
            by_rank[qi, col[hit["id"]]] = hit["score"]
    # scores.colbert_scores on the padded batch, with the documents' mask
    import torch

    docs = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(np.asarray(d)) for d in de], batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(d)) for d in de], batch_first=True)
    matrix = pylate_scores.colbert_scores(torch.as_tensor(np.stack([np.asarray(q) for q in qe])), docs,
                                          documents_mask=mask).numpy()
    assert np.abs(matrix - by_rank).max() <= 1e-4
    exact = _maxsim(hq, hd)  # the harness's own fp32 MaxSim
    assert np.abs(matrix - exact).max() <= 1e-4
    figures = compare_scores(student, texts, matrix, tol=student.query_len * FP16)
    report("colbert/pylate", max_abs_vector_diff=vec, max_abs_diff_vs_fp32_maxsim=float(np.abs(matrix - exact).max()),
           moved=weights_moved(student), **figures)


def test_colbert_in_sentence_transformers_multi_vector_encoder(trained, texts, harness_side):
    import sentence_transformers

    mve = pytest.importorskip("sentence_transformers.multi_vector_encoder",
                              reason=f"sentence-transformers {sentence_transformers.__version__} has no "
                                     f"MultiVectorEncoder (6.0 added it; PyLate 1.6 pins 5.3.0)")
    student = trained("colbert")
    hq, hd, _ = harness_side(student)
    model = mve.MultiVectorEncoder(str(student.model), device="cpu")  # the card: "reads the same folder"
    qe, de = model.encode_query(texts.queries), model.encode_document(texts.docs)
    vec = max(_same_vectors(hq, qe), _same_vectors(hd, de))
    assert vec <= 1e-5, vec
    matrix = model.similarity(qe, de).cpu().numpy()
    assert np.abs(matrix - _maxsim(hq, hd)).max() <= 1e-4
    figures = compare_scores(student, texts, matrix, tol=student.query_len * FP16)
    report("colbert/MultiVectorEncoder", max_abs_vector_diff=vec, sentence_transformers=sentence_transformers.__version__,
           **figures)


# ---- SPLADE -----------------------------------------------------------------------------------------------

def test_splade_in_sparse_encoder(trained, texts, harness_side):
    import sentence_transformers

    if not hasattr(sentence_transformers, "SparseEncoder"):
        pytest.skip(f"sentence-transformers {sentence_transformers.__version__} has no SparseEncoder (5.0 added it)")
    student = trained("splade")
    hq, hd, harness_model = harness_side(student)
    model = card_st_model(student, sentence_transformers.SparseEncoder)
    vocab = harness_model.vocab
    figures: dict = {}
    sparse = {}
    for name, ours, encode, items in (("query", hq, model.encode_query, texts.queries),
                                      ("passage", hd, model.encode_document, texts.docs)):
        dense = encode(items, convert_to_tensor=True)
        dense = (dense.to_dense() if dense.is_sparse else dense).float().cpu().numpy()
        sparse[name] = dense
        theirs = [{vocab[i]: float(row[i]) for i in np.flatnonzero(row)} for row in dense]
        differ = [(set(b) - set(a), set(a) - set(b)) for a, b in zip(ours, theirs) if set(a) != set(b)]
        assert not differ, f"{len(differ)} {name} texts activate other terms (anchor-only, harness-only): {differ[:3]}"
        w = max(abs(a[t] - b[t]) for a, b in zip(ours, theirs) for t in a)
        assert w <= 1e-4, w
        figures[f"{name}_terms"] = float(np.mean([len(a) for a in ours]))
        figures[f"{name}_max_weight_diff"] = w
    scores = model.similarity(sparse["query"], sparse["passage"])
    scores = np.asarray(scores.to_dense() if getattr(scores, "is_sparse", False) else scores, dtype=np.float64)
    figures.update(compare_scores(student, texts, scores, tol=1e-4, relative=True))
    report("splade/SparseEncoder", sentence_transformers=sentence_transformers.__version__,
           moved=weights_moved(student), **figures)


# ---- dense ------------------------------------------------------------------------------------------------

def test_dense_in_sentence_transformer(trained, texts, harness_side):
    import sentence_transformers

    student = trained("dense")
    hq, hd, _ = harness_side(student)
    model = card_st_model(student, sentence_transformers.SentenceTransformer)
    qe, de = model.encode(texts.queries), model.encode(texts.docs)
    cos = []
    for ours, theirs in ((hq, qe), (hd, de)):
        a, b = np.stack(ours).astype(np.float64), np.asarray(theirs, dtype=np.float64)
        cos += list((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
    assert min(cos) >= 0.999, f"{sum(c < 0.999 for c in cos)} texts under cosine 0.999 (min {min(cos):.4f})"
    scores = np.asarray(model.similarity(qe, de), dtype=np.float64)
    figures = compare_scores(student, texts, scores, tol=1e-4, relative=True)
    report("dense/SentenceTransformer", one_minus_min_cosine=float(1 - min(cos)),
           sentence_transformers=sentence_transformers.__version__, moved=weights_moved(student), **figures)


# ---- exported runs in ranx and PyTerrier -------------------------------------------------------------------

def test_exported_run_reads_in_ranx(trained, texts):
    ranx = pytest.importorskip("ranx", reason="ranx is not installed (the interop environment has it)")
    student = trained("colbert")
    run = ranx.Run.from_file(str(student.trec), kind="trec")
    got = run.to_dict()
    assert set(got) == set(student.run)
    for qid, ranked in student.run.items():
        assert len(got[qid]) == len(ranked) and all(abs(got[qid][d] - s) < 1e-6 for d, s in ranked)
    qrels = ranx.Qrels({q: {d: int(r) for d, r in rel.items()} for q, rel in texts.qrels.items()})
    ndcg = ranx.evaluate(qrels, run, "ndcg@10")
    ours = student.payload["results"][student.ds]["nDCG@10"]
    assert abs(ndcg - ours) < 1e-6, (ndcg, ours)
    report("export/ranx", ranx_ndcg10=float(ndcg), harness_ndcg10=float(ours))


def test_exported_run_reads_in_pyterrier(trained):
    pt = pytest.importorskip("pyterrier", reason="PyTerrier is not installed (the interop environment has it)")
    student = trained("colbert")
    df = pt.io.read_results(str(student.trec))  # pure Python: no JVM is started
    assert set(df.columns) >= {"qid", "docno", "rank", "score"} and len(df) == sum(map(len, student.run.values()))
    for qid, group in df.groupby("qid", sort=False):
        group = group.sort_values("rank")
        assert list(group["docno"]) == [d for d, _ in student.run[qid]]
        assert np.allclose(group["score"].to_numpy(), [s for _, s in student.run[qid]], atol=1e-6)
    report("export/pyterrier", rows=len(df), pyterrier=pt.__version__)
