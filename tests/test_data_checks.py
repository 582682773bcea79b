"""Dirty collections are refused when opened, before any work, with ``dataset: file:line: problem`` and
exit 2 — or, with ``data.on_problem = "warn"``, run as they are with the problems recorded in the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import last_json_line, run_cli
from harness.data import open_dataset
from harness.data.checks import check_beir
from harness.errors import DataError

DOCS = [{"_id": f"d{i}", "title": f"title {i}", "text": f"passage number {i} about topic {i % 3}"} for i in range(8)]
QUERIES = [{"_id": "q1", "text": "topic 1"}, {"_id": "q2", "text": "passage number 4"}]
QRELS = [("q1", "d1", 1), ("q2", "d4", 1)]


def _folder(root: Path, docs=None, queries=None, qrels=None, raw_corpus: "bytes | None" = None) -> Path:
    d = root / "coll"
    (d / "qrels").mkdir(parents=True)
    corpus = raw_corpus if raw_corpus is not None else "".join(
        json.dumps(x) + "\n" for x in (DOCS if docs is None else docs)).encode()
    (d / "corpus.jsonl").write_bytes(corpus)
    (d / "queries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in (QUERIES if queries is None else queries)))
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{doc}\t{r}\n" for q, doc, r in (QRELS if qrels is None else qrels)))
    return d


CASES = {
    "duplicate id, same text": (dict(docs=DOCS + [DOCS[2]]), "corpus.jsonl:9: duplicate document id 'd2' (first on line 3)"),
    "duplicate id, other text": (dict(docs=DOCS + [{"_id": "d2", "text": "else"}]), "duplicate document id 'd2'"),
    "qrels naming a missing doc": (dict(qrels=QRELS + [("q1", "d99", 1)]),
                                   "test.tsv:4: judges document 'd99', which is not in the corpus"),
    "qrels naming a missing query": (dict(qrels=QRELS + [("q9", "d1", 1)]),
                                     "test.tsv:4: judges query 'q9', which is not in queries.jsonl"),
    "invalid UTF-8": (dict(raw_corpus=b'{"_id": "d0", "text": "ok"}\n{"_id": "d1", "text": "caf\xe9"}\n'),
                      "corpus.jsonl:2: not UTF-8"),
    "null query text": (dict(queries=[QUERIES[0], {"_id": "q2", "text": None}]),
                        "queries.jsonl:2: query q2: \"text\" is null, not a string"),
    "empty corpus": (dict(raw_corpus=b""), "corpus.jsonl: no documents"),
    "broken JSON line": (dict(raw_corpus=b'{"_id": "d0", "text": "ok"}\n{"_id": "d1", "text": \n'),
                         "corpus.jsonl:2: not a JSON object"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_named_with_file_and_line(tmp_path, case):
    kwargs, message = CASES[case]
    d = _folder(tmp_path, **kwargs)
    problems = check_beir(d / "corpus.jsonl", d / "queries.jsonl", d / "qrels" / "test.tsv")
    assert any(message in p for p in problems), problems
    with pytest.raises(DataError) as err:
        open_dataset(str(d))
    assert str(err.value).startswith(f"{d}: ") and message in str(err.value) and "on_problem" in str(err.value)


def test_a_clean_collection_has_no_problems_and_the_verdict_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    d = _folder(tmp_path)
    assert open_dataset(str(d)).problems == []
    assert len(list((tmp_path / "cache" / "data-checks").glob("*.json"))) == 1
    import harness.data.checks as checks

    monkeypatch.setattr(checks, "check_beir", lambda *a: pytest.fail("read again despite the cache"))
    assert open_dataset(str(d)).problems == []
    (d / "corpus.jsonl").write_text((d / "corpus.jsonl").read_text() + json.dumps(DOCS[0]) + "\n")
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="duplicate document id 'd0'"):  # new content, new verdict
        open_dataset(str(d))


RECIPE = """extends = "baselines/bm25-scifact.toml"
name = "dirty"
[eval]
datasets = ["{folder}#test"]
measures = ["nDCG@10"]
"""


def test_a_run_on_a_dirty_collection_stops_before_work_or_records_the_problems(tmp_path, data_dir):
    d = _folder(tmp_path, docs=DOCS + [DOCS[2]])
    recipe = tmp_path / "dirty.toml"
    recipe.write_text(RECIPE.format(folder=d))
    runs = tmp_path / "runs"
    out = run_cli("run", str(recipe), "--runs-dir", str(runs))
    assert out.returncode == 2, out.stderr
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {recipe}: eval.datasets: {d}#test: {d / 'corpus.jsonl'}:9: duplicate "
                           "document id 'd2' (first on line 3)"), line
    assert not runs.exists() or not any(runs.rglob("*-*"))  # nothing was built
    v = run_cli("validate", str(recipe), "--data")
    assert v.returncode == 2 and "duplicate document id 'd2'" in v.stderr
    ok = run_cli("run", str(recipe), "--runs-dir", str(runs), "--set", 'data.on_problem="warn"', "--json")
    assert ok.returncode == 0, ok.stderr[-2000:]
    payload = last_json_line(ok.stdout)
    assert any("duplicate document id 'd2'" in w for w in payload["warnings"])
    manifest = json.loads((runs / "dirty" / "manifest.json").read_text())
    assert any("duplicate document id 'd2'" in w for w in manifest["warnings"])
