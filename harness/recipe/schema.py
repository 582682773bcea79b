"""The recipe schema: one dataclass per TOML table, each field with its default, check and doc.

A recipe names what to evaluate (``method``), on which data, with which parameters. Validation
(:mod:`harness.recipe.fields`) happens before any compute; every problem is one line that names the
file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.recipe.fields import between, non_empty, non_negative, param, positive


def _measure_check(measures: list[str]) -> "str | None":
    """Each measure must parse as an ir_measures string such as ``nDCG@10``."""
    import ir_measures  # light (~40 ms); only needed when validating

    for m in measures:
        try:
            ir_measures.parse_measure(m)
        except Exception:  # ir_measures raises NameError/ValueError/SyntaxError for bad strings
            return f'ir_measures measure strings such as "nDCG@10", "RR@10", "R@100" (bad: "{m}")'
    return None if measures else "a non-empty list of ir_measures strings"


def _dataset_ids_check(ids: list[str]) -> "str | None":
    for i in ids:
        if not i.strip() or any(c.isspace() for c in i):
            return f'dataset ids such as "beir/scifact/test" or "cranfield" (bad: "{i}")'
    return None if ids else "a non-empty list of dataset ids"


@dataclass(frozen=True)
class DataSection:
    doc_fields: list[str] = param(
        ["title", "text"],
        doc='Document fields joined with " " to make the text that is indexed and encoded.',
        check=non_empty, expect='a non-empty list of fields from "title", "text"')

    def __post_init__(self) -> None:
        bad = [f for f in self.doc_fields if f not in ("title", "text")]
        if bad:
            raise ValueError(f'doc_fields: expected fields from "title", "text", got "{bad[0]}"')


@dataclass(frozen=True)
class BM25Section:
    k1: float = param(0.9, doc="BM25 k1 (Pyserini's BEIR default).", check=positive)
    b: float = param(0.4, doc="BM25 b (Pyserini's BEIR default).", check=between(0.0, 1.0))


@dataclass(frozen=True)
class EvalSection:
    datasets: list[str] = param(
        ["beir/scifact/test"],
        doc="Dataset ids: ir_datasets ids (beir/scifact/test, msmarco-passage/dev/small, trec-dl-2019/judged), "
            "plain names of folders under $HARNESS_DATA_DIR (cranfield), or paths to BEIR folders "
            "(./data/myset#test).",
        check=_dataset_ids_check)
    measures: list[str] = param(
        ["nDCG@10", "RR@10", "R@100"], doc="ir_measures strings.", check=_measure_check)
    depth: int = param(1000, doc="Documents retrieved per query (the run file's depth).", check=positive)
    max_queries: int = param(
        0, doc="Keep only the first N judged queries of each dataset (0 = all): for CPU slices.",
        check=non_negative)
    max_docs: int = param(
        0, doc="Keep only N documents: every document judged for the kept queries, then the corpus in "
               "order (0 = all): for CPU slices.", check=non_negative)


@dataclass(frozen=True)
class Recipe:
    name: str = param(doc="Recipe name: the run directory is runs/<name>/ (default: the file name).")
    method: Literal["bm25"] = param("bm25", doc="What is evaluated: bm25 = Pyserini Lucene BM25.")
    description: str = param("", doc="Free text shown in reports.")
    seed: int = param(42, doc="Random seed for everything that samples.", check=non_negative,
)
    data: DataSection = param(DataSection)
    bm25: BM25Section = param(BM25Section)
    eval: EvalSection = param(EvalSection)
