"""From a dataset id in a recipe to a :class:`Dataset`.

Lookup order for an id:

1. A path (``/…``, ``./…``, ``../…``, ``~/…``) is a BEIR folder; ``#split`` picks the split (default ``test``):
   ``./data/myset#dev``.
2. ``beir/<name>[/<split>]`` or ``<name>[/<split>]``: a BEIR folder ``$HARNESS_DATA_DIR/<name>/`` with
   ``qrels/<split>.tsv`` (default split ``test``; ``dev/small`` → ``qrels/dev-small.tsv``).
   ``HARNESS_DATA_DIR`` may list several folders separated by ``:``.
3. Otherwise ir_datasets (aliases: ``scifact`` → ``beir/scifact/test``, ``trec-dl-2019/judged`` →
   ``msmarco-passage/trec-dl-2019/judged``), which downloads on first use.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path

from harness.data.beir import LAYOUT, BeirFolder
from harness.data.dataset import Dataset, DatasetSlice
from harness.errors import DataError

ENV = "HARNESS_DATA_DIR"
log = logging.getLogger("harness")

# Short names users write for ir_datasets ids.
ALIASES = {
    "trec-dl-2019": "msmarco-passage/trec-dl-2019/judged",
    "trec-dl-2019/judged": "msmarco-passage/trec-dl-2019/judged",
    "trec-dl-2020": "msmarco-passage/trec-dl-2020/judged",
    "trec-dl-2020/judged": "msmarco-passage/trec-dl-2020/judged",
    "msmarco-dev": "msmarco-passage/dev/small",
}


def data_dirs() -> list[Path]:
    raw = os.environ.get(ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _local_name_split(spec: str) -> tuple[str, str]:
    rest = spec.removeprefix("beir/")
    name, _, split = rest.partition("/")
    return name, (split.replace("/", "-") or "test")


def _local_hint(spec: str) -> str:
    name, split = _local_name_split(spec)
    where = f"${ENV}/{name}/" if data_dirs() else f"a folder <dir>/{name}/ and set {ENV}=<dir>"
    return f"place corpus.jsonl, queries.jsonl and qrels/{split}.tsv (BEIR layout) in {where}"


def open_dataset(spec: str, *, max_queries: int = 0, max_docs: int = 0, check: bool = True,
                 on_problem: str = "error") -> Dataset:
    """Resolve ``spec``, check its files are there and (a local folder) that its content is sound
    (:mod:`harness.data.checks`); slice it when ``max_queries``/``max_docs`` are set.

    A collection with problems raises DataError (``on_problem="error"``) or is opened with its problems
    logged and kept as ``.problems`` (``"warn"``)."""
    ds = _resolve(spec)
    problems: list[str] = []
    if check:
        ds.check()  # type: ignore[attr-defined]
        if isinstance(ds, BeirFolder):
            from harness.data.checks import cached_check_beir

            problems = cached_check_beir(ds.corpus_path, ds.queries_path, ds.qrels_path,
                                         f"{ds.corpus_fingerprint()}:{ds.topics_fingerprint()}")
    if problems and on_problem == "error":
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataError(f"{spec}: {problems[0]}{more}; fix the collection, or set data.on_problem = \"warn\" "
                        "to run it as it is")
    for p in problems[:5]:
        log.warning("data   %s: %s", spec, p)
    if len(problems) > 5:
        log.warning("data   %s: ... and %d more problems", spec, len(problems) - 5)
    out = DatasetSlice(ds, max_queries=max_queries, max_docs=max_docs) if max_queries or max_docs else ds
    out.problems = problems  # type: ignore[attr-defined]
    return out


def _resolve(spec: str) -> Dataset:
    if spec.startswith(("/", "./", "../", "~")):
        folder_s, _, split = spec.partition("#")
        folder = Path(folder_s).expanduser()
        if not folder.is_dir():
            raise DataError(f"{spec}: folder {folder} not found; a BEIR folder holds {LAYOUT}")
        return BeirFolder(folder, split or "test", spec)

    name, split = _local_name_split(spec)
    for root in data_dirs():
        folder = root / name
        if folder.is_dir():
            return BeirFolder(folder, split, spec)

    import ir_datasets  # ~0.2 s; only when the data is not local

    registry = set(ir_datasets.registry)
    candidates = [ALIASES.get(spec, spec)]
    if spec.startswith("beir/") or "/" not in spec:
        rest = spec.removeprefix("beir/")
        candidates += [f"beir/{rest}", f"beir/{rest}/test"]
    for cand in candidates:
        if cand in registry:
            from harness.data.irds import IrDataset

            return IrDataset(cand, spec, _local_hint(spec))

    local = sorted({p.name for root in data_dirs() if root.is_dir() for p in root.iterdir() if p.is_dir()})
    close = difflib.get_close_matches(spec, local + list(ALIASES) + sorted(registry), n=3, cutoff=0.6)
    looked = (f"no folder \"{name}\" in {ENV}={os.environ.get(ENV)}" if data_dirs()
              else f"{ENV} is not set, so no local folder was looked up")
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise DataError(f"{spec}: unknown dataset: {looked}, and it is not an ir_datasets id.{hint} "
                    f"To use local files, {_local_hint(spec)}.")
