"""Load finished runs (``runs/<recipe>/results.json``) into pandas for tables, plots, leaderboards and the gate.

Every run writes its own ``results.json`` (atomically, last, after everything it names), so runs made by
several processes, or on several machines and copied into one folder, merge by simply listing them:
there is no shared file to lose updates in. A folder given here is either one run directory (it holds
``results.json``) or a runs root whose children are run directories (``_shared`` and hidden folders are
skipped, as is a child whose ``results.json`` is not there yet: a run still in progress).

Paths inside ``results.json`` and ``manifest.json`` are absolute on the machine that made the run; they
are re-rooted onto the folder the run is read from first (``<run_dir>/eval-.../per_query.tsv``,
``<runs root>/_shared/...``), and used as written only when that finds nothing, so copied runs work.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from harness.errors import UserInputError

RESULTS_FILE = "results.json"
MANIFEST_FILE = "manifest.json"


class ReportInputError(UserInputError):
    """A run directory, result file or expectation file that cannot be used (exit status 2)."""


@dataclass
class RunResult:
    """One finished run: its ``results.json`` payload, its manifest (when present) and where it lies."""

    dir: Path
    payload: dict[str, Any]
    manifest: "dict[str, Any] | None" = None
    label: str = ""  # unique row label among the runs loaded together (the recipe name unless it clashes)
    _per_query: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def recipe(self) -> str:
        return str(self.payload.get("recipe", self.dir.name))

    @property
    def method(self) -> str:
        return str(self.payload.get("method", ""))

    @property
    def description(self) -> str:
        return str(self.payload.get("description", "") or "")

    @property
    def recipe_file(self) -> "str | None":
        return self.payload.get("recipe_file")

    @property
    def results(self) -> dict[str, dict[str, float]]:
        return self.payload.get("results", {})

    def std(self, dataset: str, measure: str) -> "float | None":
        """The standard deviation over training seeds of a multi-seed run's cell (None for a single run)."""
        v = (self.payload.get("std") or {}).get(dataset, {}).get(measure)
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def n_seeds(self) -> int:
        """How many training seeds the results average (1 for a single run)."""
        return int((self.payload.get("seeds") or {}).get("n", 1))

    @property
    def datasets(self) -> list[str]:
        return list(self.results)

    @property
    def finished(self) -> str:
        return str((self.manifest or {}).get("finished", ""))

    @property
    def overrides(self) -> list[str]:
        return list((self.manifest or {}).get("overrides", []))

    # ---- paths written on another machine -----------------------------------------------------------

    def locate(self, path: "str | None") -> "Path | None":
        """A path recorded by the run, re-rooted onto where the run is now; None when it is not there."""
        if not path:
            return None
        p = Path(path)
        old_run_dir = Path(self.payload.get("run_dir") or self.dir)
        # the run itself, its runs root (_shared), and the root above a seed run (<root>/<name>/seed-<k>)
        for old_root, new_root in ((old_run_dir, self.dir), (old_run_dir.parent, self.dir.parent),
                                   (old_run_dir.parent.parent, self.dir.parent.parent)):
            try:
                candidate = new_root / p.relative_to(old_root)
            except ValueError:
                continue
            if candidate.exists():
                return candidate
        return p if p.exists() else None

    # ---- per-query values ----------------------------------------------------------------------------

    def per_query_path(self, dataset: str) -> "Path | None":
        return self.locate(self.payload.get("files", {}).get(dataset, {}).get("per_query"))

    def per_query(self, dataset: str) -> "dict[str, dict[str, float]] | None":
        """{query_id: {measure: value}} from the run's per_query.tsv, or None when the file is not here."""
        if dataset not in self._per_query:
            path = self.per_query_path(dataset)
            if path is None:
                self._per_query[dataset] = None
            else:
                from harness.evaluate import read_per_query

                try:
                    self._per_query[dataset] = read_per_query(path)
                except (OSError, ValueError, IndexError) as exc:
                    raise ReportInputError(f"{path}: unreadable per-query file ({exc})") from exc
        return self._per_query[dataset]

    # ---- stages and efficiency -------------------------------------------------------------------------

    @property
    def stages(self) -> list[dict[str, Any]]:
        return list((self.manifest or {}).get("stages", []))

    def _stage_manifest(self, stage_dir: "str | None") -> "dict[str, Any] | None":
        where = self.locate(stage_dir)
        if where is None or not (where / MANIFEST_FILE).is_file():
            return None
        try:
            return json.loads((where / MANIFEST_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    @cached_property
    def training(self) -> dict[str, Any]:
        return dict(self.payload.get("training") or {})

    @cached_property
    def teacher_pairs(self) -> "int | None":
        """Teacher scores computed for the answer key (0 pairs when the key was reused still counts them)."""
        pairs = [s.get("info", {}).get("pairs") for s in self.stages if s.get("name") == "answer-key"]
        pairs = [int(p) for p in pairs if isinstance(p, (int, float))]
        return sum(pairs) if pairs else None

    def figures(self, dataset: str) -> dict[str, Any]:
        return dict((self.payload.get("figures") or {}).get(dataset) or {})

    def index_bytes(self, dataset: str) -> "int | None":
        """The index's size: the index stage's own figure (students), else the files of the BM25 index."""
        fig = self.figures(dataset)
        if isinstance(fig.get("index_bytes"), (int, float)):
            return int(fig["index_bytes"])
        # BM25: results name the bm25-run stage ("from"); its key names the Lucene index stage
        run_stage = self._stage_manifest(fig.get("from"))
        index_hash = (run_stage or {}).get("key", {}).get("index")
        if not index_hash:
            return None
        for s in self.stages:
            if s.get("hash") == index_hash:
                index = self._stage_manifest(s.get("dir"))
                if index and index.get("files"):
                    return int(sum(f.get("size", 0) for f in index["files"].values()))
        return None

    def efficiency(self, dataset: str) -> dict[str, Any]:
        """Cost figures of this run on ``dataset``; None where the run did not measure it.

        train_seconds and teacher_pairs belong to the recipe (the same for every dataset). Query latency is
        only what the index stage measured per query (students); BM25's batch search time is not a latency
        and is not reported as one."""
        fig = self.figures(dataset)
        num = lambda k: fig[k] if isinstance(fig.get(k), (int, float)) and not isinstance(fig.get(k), bool) else None
        train = self.training.get("train_seconds")
        return {
            "train_seconds": float(train) if isinstance(train, (int, float)) else None,
            "teacher_pairs": self.teacher_pairs,
            "index_bytes": self.index_bytes(dataset),
            "avg_doc_terms": num("avg_doc_terms"),
            "avg_query_terms": num("avg_query_terms"),
            "bytes_per_token": num("bytes_per_token"),
            "latency_ms_p50": num("latency_ms_p50"),
            "latency_ms_p95": num("latency_ms_p95"),
            "docs_per_second": num("docs_per_second"),
        }

    # ---- training ------------------------------------------------------------------------------------

    def train_log(self) -> "list[dict[str, Any]] | None":
        """The trained student's per-step log (``train_log.jsonl`` in its ``student-<family>`` stage)."""
        for s in self.stages:
            if str(s.get("name", "")).startswith("student-"):
                where = self.locate(s.get("dir"))
                if where is not None and (where / "train_log.jsonl").is_file():
                    rows = []
                    for line in (where / "train_log.jsonl").read_text().splitlines():
                        line = line.strip()
                        if line:
                            try:
                                rows.append(json.loads(line))
                            except json.JSONDecodeError:
                                continue  # a torn last line of a run that was killed while training
                    return rows
        return None


# ---- finding and loading runs -------------------------------------------------------------------------

def find_run_dirs(paths: Iterable["str | Path"]) -> list[Path]:
    """Run directories named by ``paths``: a run directory, its results.json, or a runs root holding many."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file() and p.name == RESULTS_FILE:
            found.append(p.parent)
        elif (p / RESULTS_FILE).is_file():
            found.append(p)
        elif p.is_dir():
            children = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith(("_", "."))
                              and (c / RESULTS_FILE).is_file())
            if not children:
                raise ReportInputError(f"{p}: no {RESULTS_FILE} here or in the folders inside it "
                                       "(give a run directory or a runs root)")
            found.extend(children)
        else:
            raise ReportInputError(f"{p}: no such run directory")
    out: list[Path] = []
    seen: set[Path] = set()
    for d in found:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def load_run(run_dir: "str | Path") -> RunResult:
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportInputError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path}: not a readable results file ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), dict):
        raise ReportInputError(f"{path}: results: missing (expected {{dataset: {{measure: value}}}})")
    for key in ("recipe", "recipe_file", "method", "description", "run_dir"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise ReportInputError(f"{path}: {key}: expected a string, got {payload[key]!r}")
    for ds, values in payload["results"].items():
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
            raise ReportInputError(f"{path}: results.{ds}: expected {{measure: number}}")
    manifest = None
    if (run_dir / MANIFEST_FILE).is_file():
        try:
            manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            manifest = None  # the results stand on their own; only efficiency figures need the manifest
    return RunResult(dir=run_dir, payload=payload, manifest=manifest)


def load_runs(paths: Iterable["str | Path"]) -> list[RunResult]:
    """Every run under ``paths``, in the order given (a root's runs sorted by name), with unique labels."""
    runs = [load_run(d) for d in find_run_dirs(paths)]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.recipe] = counts.get(r.recipe, 0) + 1
    used: set[str] = set()
    for r in runs:
        if counts[r.recipe] == 1:
            label = r.recipe
        elif re.fullmatch(r"seed-\d+", r.dir.name):  # one training seed of a multi-seed run
            label = f"{r.recipe}/{r.dir.name}"
        else:
            label = f"{r.recipe}@{r.dir.parent.name}"
        base, i = label, 2
        while label in used:
            label, i = f"{base}#{i}", i + 1
        used.add(label)
        r.label = label
    return runs
