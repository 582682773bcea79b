"""Evaluation with ir_measures: aggregate and per-query figures, TREC run files."""

from harness.evaluate.measures import evaluate, read_per_query, write_per_query
from harness.evaluate.runfile import Run, read_trec, write_trec

__all__ = ["Run", "evaluate", "read_per_query", "read_trec", "write_per_query", "write_trec"]
