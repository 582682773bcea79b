"""Datasets through ir_datasets (``beir/scifact/test``, ``msmarco-passage/dev/small`` …).

ir_datasets downloads on first use and caches under ``$IR_DATASETS_HOME`` (default ``~/.ir_datasets``).
Offline it raises ``requests.exceptions.ConnectionError`` after retries; here that becomes one message
naming the dataset and where to put which files.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from harness.data.dataset import Dataset, Doc, Qrels
from harness.errors import DataError


def _irds():
    import ir_datasets

    return ir_datasets


class IrDataset(Dataset):
    def __init__(self, irds_id: str, dataset_id: str, local_hint: str):
        self.irds_id, self.id = irds_id, dataset_id
        self.source = f"ir_datasets:{irds_id}"
        self._local_hint = local_hint
        self._ds = _irds().load(irds_id)

    def check(self) -> None:
        ds = self._ds
        lacking = [what for what, has in (("documents", ds.has_docs()), ("queries", ds.has_queries()),
                                           ("qrels", ds.has_qrels())) if not has]
        if lacking:
            raise DataError(f"{self.id}: ir_datasets id \"{self.irds_id}\" has no {' or '.join(lacking)}; "
                            "evaluation needs documents, queries and qrels (pick a split such as .../test)")

    @contextlib.contextmanager
    def _download_errors(self, what: str) -> Iterator[None]:
        irds_log = logging.getLogger("ir_datasets")  # every ir_datasets module logs under this name
        irds_log.addFilter(_quiet_download_failures)  # its per-retry lines would bury our one message
        try:
            yield
        except Exception as exc:  # requests.ConnectionError, urllib errors, ir_datasets' IOErrors
            if not _is_download_error(exc):
                raise
            home = _irds().util.home_path()
            raise DataError(
                f"{self.id}: ir_datasets could not download the {what} of \"{self.irds_id}\" "
                f"({type(exc).__name__}; offline?). Either run once on a machine with internet (ir_datasets "
                f"caches it under {home}, copy that folder over), or {self._local_hint}") from None
        finally:
            irds_log.removeFilter(_quiet_download_failures)

    def _iter_docs(self) -> Iterator[Doc]:
        with self._download_errors("documents"):
            for doc in self._ds.docs_iter():
                title = getattr(doc, "title", "") or ""
                text = getattr(doc, "text", None)
                if text is None:
                    text = doc.default_text()
                yield Doc(doc.doc_id, title, text)

    def doc_store(self):
        """ir_datasets' random-access store (downloads and builds its lookup on first use)."""
        if not hasattr(self, "_doc_store"):
            with self._download_errors("documents"):
                self._doc_store = _IrdsDocStore(self._ds.docs_store())
        return self._doc_store

    def _load_queries(self) -> dict[str, str]:
        with self._download_errors("queries"):
            return {q.query_id: (getattr(q, "text", None) or q.default_text()) for q in self._ds.queries_iter()}

    def _load_qrels(self) -> Qrels:
        qrels: Qrels = {}
        with self._download_errors("qrels"):
            for q in self._ds.qrels_iter():
                qrels.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
        return qrels

    def corpus_fingerprint(self) -> str:
        irds = _irds()
        return f"irds-corpus:{irds.docs_parent_id(self.irds_id)}:{irds.__version__}"

    def topics_fingerprint(self) -> str:
        return f"irds-topics:{self.irds_id}:{_irds().__version__}"


class _IrdsDocStore:
    """Mapping-like view of an ir_datasets docs store returning :class:`Doc`."""

    def __init__(self, store):
        self._store = store

    def __getitem__(self, doc_id: str) -> Doc:
        doc = self._store.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        text = getattr(doc, "text", None)
        return Doc(doc.doc_id, getattr(doc, "title", "") or "", text if text is not None else doc.default_text())

    def __contains__(self, doc_id: str) -> bool:
        return self._store.get(doc_id) is not None


def _quiet_download_failures(record: logging.LogRecord) -> bool:
    msg = record.getMessage()
    return not ("download error" in msg or "Download failed" in msg or msg.startswith("[error]"))


def _is_download_error(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        mod = type(exc).__module__ or ""
        if mod.startswith(("requests", "urllib3", "urllib", "http.client", "socket", "ssl")):
            return True
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if "download" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False
