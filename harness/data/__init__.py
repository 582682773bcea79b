"""Data: one interface (documents, judged queries, qrels of a split) over ir_datasets ids and BEIR folders."""

from harness.data.dataset import Dataset, DatasetSlice, Doc, Qrels, QuerySplit, dev_split
from harness.data.resolve import ENV, open_dataset

__all__ = ["ENV", "Dataset", "DatasetSlice", "Doc", "Qrels", "QuerySplit", "dev_split", "open_dataset"]
