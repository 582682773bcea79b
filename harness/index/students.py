"""Serving a trained student: encode the corpus into the family's index, then search it.

Each family's index is a :class:`~harness.index.base.StudentIndex` registered in
:data:`harness.registry.INDEXES` (SPLADE → Lucene impacts, ColBERT → PLAID, dense → FAISS); this module
only talks to that interface. An index stage keeps what the exact search needs (sparse weights, token
vectors, vectors) beside the index, and the figures users compare methods by: index size, bytes per token
or terms per passage, passages encoded per second, latency.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from harness.encoding import COMPILE_MIN_PASSAGES, compile_corpus_encoder
from harness.evaluate import Run
from harness.memory import release_freed_memory

log = logging.getLogger("harness")


# passages encoded and written at a time: one chunk's vectors are held, and the allocator's freed memory grows
# with the chunk (the chunk's kept vectors pin the heap between the freed per-batch activations: measured for
# MiniLM at 32 tokens, one 20,000-passage call peaks 490 MB over its start, 350 MB of it freed but held)
CHUNK = int(os.environ.get("HARNESS_ENCODE_CHUNK", "10000"))


def index_corpus(family: str, student, docs: "Iterable[tuple[str, str]]", out: Path, cfg,
                 doc_max_len: "int | None" = None, approximate: bool = True, chunk: int = 0) -> dict[str, Any]:
    """Encode the (doc id, text) pairs ``docs`` (read up to ``doc_max_len`` tokens) ``chunk`` passages at a
    time and write the family's index to ``out`` as they come (the corpus's text and vectors are never held
    whole: a chunk's are, and what the index itself keeps in memory); returns figures. With ``approximate``
    False no index is built: only what the exhaustive search reads is kept. Under torchrun every rank
    encodes its share of each chunk; rank 0 writes."""
    from harness import distributed
    from harness.registry import INDEXES

    chunk = chunk or CHUNK
    main = distributed.is_main()
    writer = INDEXES[family].writer(out, cfg, approximate) if main else None
    n, encode_seconds = 0, 0.0
    parts = _parts(docs, chunk)
    # the first chunks' text (not their vectors) read ahead until the corpus is known to be large enough to
    # compile for, or is all read
    head: list = []
    seen = 0
    while seen < COMPILE_MIN_PASSAGES and (part := next(parts, None)) is not None:
        head.append(part)
        seen += len(part)
    compiled = first = compile_corpus_encoder(seen, student.device, student.compile_for_corpus)
    with open(out / "doc_ids.txt", "w", encoding="utf-8") if main else contextlib.nullcontext() as ids, \
            contextlib.ExitStack() as stack:
        for part in itertools.chain(head, parts):
            texts = [text for _, text in part]
            t0 = time.perf_counter()
            if first:  # compiled for the rest of the corpus, or eager where compilation fails
                reps, compiled = _first_compiled(student, texts, doc_max_len, stack)
                first = False
            else:
                reps = student.infer_docs(texts, doc_max_len)
            encode_seconds += time.perf_counter() - t0
            if main:
                ids.write("".join(f"{doc_id}\n" for doc_id, _ in part))
                writer.ids([doc_id for doc_id, _ in part])
                writer.add(reps)
            n += len(part)
            del reps
            release_freed_memory()
    if not main:
        return {}  # rank 0 writes the index
    info: dict[str, Any] = {"documents": n, "doc_max_len": doc_max_len or student.doc_max_len,
                            "encode_seconds": round(encode_seconds, 2),
                            "docs_per_second": round(n / max(encode_seconds, 1e-9), 1), "compiled": bool(compiled),
                            "search": "index" if approximate else "exact"}
    info.update(writer.finish())
    return info


def _first_compiled(student, texts: list, doc_max_len, stack: contextlib.ExitStack) -> "tuple[list, bool]":
    """The first chunk encoded with the transformer compiled (kept compiled in ``stack`` for the rest); where
    compilation fails on this machine (no C++ compiler for inductor, an unsupported op), one warning and the
    chunk is encoded eagerly, as is the rest."""
    inner = contextlib.ExitStack()
    try:
        inner.enter_context(student.compiled_encoder())
        reps = student.infer_docs(texts, doc_max_len)
    except Exception as exc:  # noqa: BLE001 - any compiler failure: eager is always right
        inner.close()
        log.warning("encode: torch.compile failed (%s: %s); encoding without it (HARNESS_COMPILE=off skips the "
                    "attempt)", type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
        return student.infer_docs(texts, doc_max_len), False
    stack.push(inner.pop_all())
    return reps, True


def _parts(items: "Iterable[Any]", size: int) -> "Iterator[list[Any]]":
    part: list[Any] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def search_corpus(family: str, student, index_dir: Path, queries: dict[str, str], k: int, cfg,
                  exact: bool, query_max_len: "int | None" = None,
                  approximate: bool = True) -> tuple[Run, "Run | None", dict[str, Any]]:
    """(run, exact run or None, figures) for ``queries`` (read up to ``query_max_len`` tokens) against the
    index in ``index_dir``. With ``approximate`` False the run itself is the exhaustive search (no index was
    built) and ``exact`` is ignored."""
    from harness.registry import INDEXES

    qids = list(queries)
    t0 = time.perf_counter()
    q_reps = student.infer_queries([queries[q] for q in qids], query_max_len)
    figures: dict[str, Any] = {"query_encode_seconds": round(time.perf_counter() - t0, 3),
                               "query_max_len": query_max_len or student.query_max_len,
                               "search": "index" if approximate else "exact"}
    doc_ids = (index_dir / "doc_ids.txt").read_text().split("\n")[:-1]

    def as_run(hits) -> Run:
        return {q: [(doc_ids[i], s) for i, s in h] for q, h in zip(qids, hits)}

    with INDEXES[family].open(index_dir, cfg) as index:
        figures.update(index.figures(q_reps))
        search = index.search if approximate else index.exact
        t0 = time.perf_counter()
        run = as_run(search(q_reps, k))
        figures["search_seconds"] = round(time.perf_counter() - t0, 3)
        timed = q_reps[: cfg.latency_queries]
        if timed:
            index.time_one(timed[0], k, approximate)  # warm-up: first-query allocations are not latency
        lat = [index.time_one(r, k, approximate) for r in timed]
        exact_run = as_run(index.exact(q_reps, k)) if exact and approximate else None
    if lat:
        figures["latency_ms_p50"] = round(float(np.percentile(lat, 50)) * 1000, 2)
        figures["latency_ms_p95"] = round(float(np.percentile(lat, 95)) * 1000, 2)
        figures["latency_queries"] = len(lat)
    return run, exact_run, figures
