"""The data layer against the counts each dataset's SOURCE.md documents, and its error messages."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from harness.data import DatasetSlice, open_dataset
from harness.errors import DataError

DATASETS = ["scifact", "cranfield", "cisi", "medline", "adi", "msmarco-sample"]


def documented_counts(folder: Path) -> dict:
    """Parse the counts table of SOURCE.md: documents, and per split judged queries / qrels rows."""
    text = (folder / "SOURCE.md").read_text()
    docs = int(re.search(r"\| documents \(corpus\.jsonl\) \| (\d+) \|", text).group(1))
    splits = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"\| qrels/(\w+)\.tsv: queries judged / rows \| (\d+) / (\d+)", text)}
    return {"docs": docs, "splits": splits}


@pytest.mark.parametrize("name", DATASETS)
def test_counts_match_source_md(data_dir, name):
    counts = documented_counts(data_dir / name)
    assert counts["splits"], "SOURCE.md lists no split"
    for split, (judged, rows) in counts["splits"].items():
        ds = open_dataset(f"beir/{name}/{split}")
        assert ds.doc_count() == counts["docs"]
        assert len(ds.queries) == judged
        assert sum(len(v) for v in ds.qrels.values()) == rows
        assert set(ds.queries) <= set(ds.qrels)


def test_id_forms_resolve_to_the_same_folder(data_dir):
    a, b, c = open_dataset("beir/scifact/test"), open_dataset("scifact"), open_dataset("scifact/test")
    assert a.folder == b.folder == c.folder == data_dir / "scifact"
    assert a.split == b.split == c.split == "test"
    assert open_dataset("beir/scifact/train").split == "train"
    # train and test share one corpus, so one index serves both
    assert open_dataset("beir/scifact/train").corpus_fingerprint() == a.corpus_fingerprint()
    assert open_dataset("beir/scifact/train").topics_fingerprint() != a.topics_fingerprint()


def test_path_ids(data_dir):
    ds = open_dataset(f"{data_dir / 'scifact'}#train")
    assert ds.split == "train" and len(ds.queries) == 809


def test_documents_and_queries_content(data_dir):
    ds = open_dataset("adi")
    first = next(iter(ds.docs()))
    row = json.loads((data_dir / "adi" / "corpus.jsonl").open().readline())
    assert (first.doc_id, first.title, first.text) == (row["_id"], row["title"], row["text"])
    assert first.contents(["title", "text"]) == f"{row['title']} {row['text']}".strip()
    assert first.contents(["text"]) == row["text"]


def test_queries_are_judged_only(data_dir):
    cisi = open_dataset("cisi")
    all_ids = {json.loads(line)["_id"] for line in (data_dir / "cisi" / "queries.jsonl").open()}
    assert len(all_ids) == 112 and len(cisi.queries) == 76


def test_slice_keeps_judged_documents(data_dir):
    ds = open_dataset("scifact", max_queries=25, max_docs=400)
    assert isinstance(ds, DatasetSlice)
    assert len(ds.queries) == 25
    docs = {d.doc_id for d in ds.docs()}
    judged = {d for q in ds.qrels.values() for d in q}
    assert judged <= docs and len(docs) == 400
    assert ds.corpus_fingerprint() != open_dataset("scifact").corpus_fingerprint()
    # deterministic
    assert [d.doc_id for d in open_dataset("scifact", max_queries=25, max_docs=400).docs()] == \
        [d.doc_id for d in ds.docs()]


def test_missing_split_names_the_available_ones(data_dir):
    with pytest.raises(DataError) as info:
        open_dataset("msmarco-sample")
    msg = str(info.value)
    assert 'no qrels for split "test"' in msg and "splits in" in msg and msg.endswith("train")


def test_unknown_dataset_suggests(data_dir):
    with pytest.raises(DataError) as info:
        open_dataset("scifactt")
    msg = str(info.value)
    assert msg.startswith("scifactt: unknown dataset") and "scifact" in msg and "corpus.jsonl" in msg


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder .* not found"):
        open_dataset(str(tmp_path / "nothing"))


def test_broken_corpus_line_names_file_and_line(tmp_path):
    d = tmp_path / "tiny"
    (d / "qrels").mkdir(parents=True)
    (d / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "x"}\n{"_id": "d2", "text": \n')
    (d / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:2: not a JSON object"):  # on opening, before any work
        open_dataset(str(d))


def test_offline_ir_datasets_gives_one_clear_message(tmp_path, monkeypatch):
    """A dataset not on disk goes to ir_datasets; a failed download becomes one DataError naming the
    dataset and where to put the files. The proxy points at a closed port, so this fails the same way
    with or without internet."""
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    ds = open_dataset("beir/nfcorpus/test")
    with pytest.raises(DataError) as info:
        ds.queries  # noqa: B018  (reading them triggers the download)
    msg = str(info.value)
    assert msg.startswith('beir/nfcorpus/test: ir_datasets could not download')
    assert "nfcorpus/" in msg and "qrels/test.tsv" in msg and "\n" not in msg


def test_trec_dl_alias():
    ds = open_dataset("trec-dl-2019/judged", check=False)
    assert ds.irds_id == "msmarco-passage/trec-dl-2019/judged"
    assert open_dataset("msmarco-passage/dev/small", check=False).irds_id == "msmarco-passage/dev/small"


def test_data_dir_may_list_several_folders(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", os.pathsep.join([str(tmp_path), str(data_dir)]))
    assert open_dataset("adi").folder == data_dir / "adi"
