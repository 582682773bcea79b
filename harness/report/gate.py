"""The regression gate: expected scores beside the recipes, checked against finished runs (Pyserini-2CR style).

Expect files
------------
A recipe ``recipes/<dir>/<name>.toml`` keeps its expected scores in the sibling file
``recipes/<dir>/<name>.expect.toml``. A run finds it through the ``recipe_file`` its ``results.json``
records, so a run made with ``--set name=...`` or other overrides is still checked against its recipe's
expectations (that is how a deliberately worse setting shows up as FAIL). When that path does not exist
on this machine (runs copied from elsewhere), the part from ``recipes/`` on is looked up among the
shipped recipes. The format::

    # recipes/baselines/bm25-scifact.expect.toml
    tolerance = 0.0005                       # optional: default absolute tolerance of every value below
                                             # (when absent: 0.001)
    description = "Pyserini BM25 flat"       # optional free text

    [expect."beir/scifact/test"]             # a dataset id exactly as results.json names it
    "nDCG@10" = 0.6789                       # a measure: the expected value, default tolerance
    "R@100" = { value = 0.9253, tolerance = 0.002 }   # or a value with its own tolerance

    [expect."beir/scifact/test[q50]"]        # a slice (eval.max_queries/max_docs) is its own dataset id
    "nDCG@10" = 0.7810

Keys: ``tolerance`` (number >= 0), ``description`` (string) and ``expect`` (a table of datasets, each a
table of measures) at the top; a measure is a number or ``{value = number, tolerance = number >= 0}``.
Anything else is an error naming the file and the field. Tolerances are absolute (scores in [0, 1]).
Every measure is higher-is-better (all ir_measures effectiveness measures are).

Verdicts
--------
Per recipe, dataset and measure, with d = actual - expected:

* ``OK``     |d| <= tolerance;
* ``OKish``  d > tolerance: better than expected by more than the tolerance; passes, but update the
             expectation so that a later drop back is caught;
* ``FAIL``   d < -tolerance: worse than expected — and, where the expect file's per-query values allow a
             noise test (:func:`noise_test`), significantly so after Holm's correction over every check of
             the invocation that has per-query values (else ``OKish``, "within noise");
* ``SKIP``   the expect file names a dataset or measure this run did not evaluate (not a failure: a run
             may evaluate a subset; ``--strict`` makes it one) — but a run that matches *nothing* of its
             expect file is a FAIL (``--allow-missing`` passes it);
* a run whose recipe has no expect file is reported (``NOEXPECT``), not a crash (``--strict``: FAIL).

Why Holm: a suite's gate runs hundreds of checks, and a retrained student on another machine (another
precision, another CPU: another numerical path through training) differs from the reference as another
training seed does. Each check's test is calibrated (three ColBERT recipes of the SciFact suite retrained on an
AMD EPYC in fp32 against their AMX-Xeon bf16 references: 27 paired z-scores with an RMS of 0.92, 2 beyond
1.96), but at 5% per check such a suite would FAIL somewhere by chance alone (there: Medline nDCG@10 of
colbert-online, 0.0121 worse over 30 queries, p = 0.019). Holm's step-down keeps the chance that a healthy
invocation FAILs at alpha (family-wise), while a real regression still fails (a 0.02 nDCG@10 drop planted in
colbert-static's 300 SciFact test queries: p = 1.6e-6, 9.8e-5 after Holm over the 62 checks of seven suite
runs). Checks without a noise test (no per-query reference) are not in the family: the tolerance alone
decides them.

``harness check RUNS...`` exits 1 when any check FAILs, 0 otherwise, and 2 on bad input (a malformed
expect file, a run directory without results.json), with one line naming the file and the field.
``--junit FILE`` also writes JUnit XML: one testcase per (recipe, dataset, measure); FAIL is a
``<failure>``, SKIP and NOEXPECT are ``<skipped>``, OKish passes with its advice in ``<system-out>``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.report.files import atomic_write_text
from harness.report.results import ReportInputError, RunResult

EXPECT_SUFFIX = ".expect.toml"
REFERENCE_SUFFIX = ".expect.tsv"  # the reference run's per-query values, beside the expect file
DEFAULT_TOLERANCE = 0.001
DEFAULT_ALPHA = 0.05
TOP_KEYS = ("tolerance", "description", "expect", "seeds", "alpha")
MEASURE_KEYS = ("value", "tolerance", "std")

OK, OKISH, FAIL, SKIP, NOEXPECT = "OK", "OKish", "FAIL", "SKIP", "NOEXPECT"


@dataclass
class Expectation:
    value: float
    tolerance: float
    std: "float | None" = None  # over the reference's training seeds


@dataclass
class ExpectFile:
    path: Path
    expect: dict[str, dict[str, Expectation]]  # dataset -> measure -> expectation
    description: str = ""
    seeds: "list[int] | None" = None  # training seeds of the reference run (None: one run, seed unknown)
    alpha: float = DEFAULT_ALPHA

    @property
    def reference_path(self) -> Path:
        return self.path.with_name(self.path.name[: -len(EXPECT_SUFFIX)] + REFERENCE_SUFFIX)

    @cached_property
    def reference(self) -> "dict[tuple[str, str], dict[str, dict[str, float]]]":
        """{(dataset, measure): {query: {"mean": v, "seed-<k>": v ...}}} from the reference TSV ({} if none)."""
        return read_reference(self.reference_path) if self.reference_path.is_file() else {}


@dataclass
class Check:
    status: str
    recipe: str
    dataset: str = ""
    measure: str = ""
    actual: "float | None" = None
    expected: "float | None" = None
    tolerance: "float | None" = None
    message: str = ""
    p: "float | None" = None  # the noise test's p-value, when a drop beyond the tolerance was tested
    p_holm: "float | None" = None  # p, Holm-adjusted over the invocation's checks with per-query values
    tested: bool = False  # per-query values on both sides: one of the family Holm's correction counts
    alpha: "float | None" = None
    how: str = ""  # what the noise test paired the run with

    def line(self, widths: "dict[str, int] | None" = None) -> str:
        w = widths or {}
        head = (f"{self.status:<8} {self.recipe:<{w.get('recipe', 0)}}  {self.dataset:<{w.get('dataset', 0)}}  "
                f"{self.measure:<{w.get('measure', 0)}}")
        if self.actual is not None and self.expected is not None:
            head += f"  {self.actual:.4f}  expected {self.expected:.4f} ± {self.tolerance:g}"
        return (head + (f"  {self.message}" if self.message else "")).rstrip()


# ---- the expect file ------------------------------------------------------------------------------------

def _q(key: str) -> str:
    """A TOML dotted-path component, quoted when it needs quotes (as users write it)."""
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _unknown(path: Path, where: str, key: str, allowed: tuple[str, ...]) -> ReportInputError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else f" (allowed: {', '.join(allowed)})"
    return ReportInputError(f"{path}: {where}{_q(key)}: unknown key{hint}")


def _tolerance(path: Path, field: str, x: Any) -> float:
    if not _number(x) or x < 0:
        raise ReportInputError(f"{path}: {field}: expected a number >= 0, got {x!r}")
    return float(x)


def parse_expect_file(path: "str | Path") -> ExpectFile:
    """Read and validate an expect file; any problem is a ReportInputError naming the file and the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportInputError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReportInputError(f"{path}: not valid TOML: {exc}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise _unknown(path, "", key, TOP_KEYS)
    default = _tolerance(path, "tolerance", data["tolerance"]) if "tolerance" in data else DEFAULT_TOLERANCE
    seeds = data.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise ReportInputError(f"{path}: seeds: expected a list of training seeds (integers >= 0), got {seeds!r}")
    alpha = data.get("alpha", DEFAULT_ALPHA)
    if not _number(alpha) or not 0 < alpha < 1:
        raise ReportInputError(f"{path}: alpha: expected a number between 0 and 1, got {alpha!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ReportInputError(f"{path}: description: expected a string, got {description!r}")
    raw = data.get("expect")
    if not isinstance(raw, dict) or not raw:
        raise ReportInputError(f'{path}: expect: missing; add a table such as [expect."beir/scifact/test"] '
                               'with "nDCG@10" = 0.6789')
    expect: dict[str, dict[str, Expectation]] = {}
    for ds, measures in raw.items():
        where = f"expect.{_q(ds)}"
        if not isinstance(measures, dict) or not measures:
            raise ReportInputError(f"{path}: {where}: expected a table of measures, e.g. \"nDCG@10\" = 0.5, "
                                   f"got {measures!r}")
        expect[ds] = {}
        for m, spec in measures.items():
            field = f"{where}.{_q(m)}"
            if not _parses(m):
                raise ReportInputError(f'{path}: {field}: not a measure ir_measures can parse (e.g. "nDCG@10", '
                                       f'"RR@10", "R@100")')
            if isinstance(spec, dict):
                for k in spec:
                    if k not in MEASURE_KEYS:
                        raise _unknown(path, f"{field}.", k, MEASURE_KEYS)
                if not _number(spec.get("value")):
                    raise ReportInputError(f"{path}: {field}.value: expected a number, got {spec.get('value')!r}")
                tol = _tolerance(path, f"{field}.tolerance", spec["tolerance"]) if "tolerance" in spec else default
                std = _tolerance(path, f"{field}.std", spec["std"]) if "std" in spec else None
                expect[ds][m] = Expectation(float(spec["value"]), tol, std)
            elif _number(spec):
                expect[ds][m] = Expectation(float(spec), default)
            else:
                raise ReportInputError(f"{path}: {field}: expected a number or {{value = number, tolerance = "
                                       f"number}}, got {spec!r}")
    return ExpectFile(path, expect, description, seeds, float(alpha))


def _parses(measure: str) -> bool:
    import ir_measures

    try:
        ir_measures.parse_measure(measure)
    except Exception:  # ir_measures raises NameError/ValueError/SyntaxError for bad strings
        return False
    return True


def read_reference(path: Path) -> "dict[tuple[str, str], dict[str, dict[str, float]]]":
    """The per-query reference TSV: dataset, query_id, measure, mean, then one column per training seed."""
    out: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        if header[:4] != ["dataset", "query_id", "measure", "mean"]:
            raise ValueError("the header must start with dataset, query_id, measure, mean")
        for n, line in enumerate(lines[1:], start=2):
            parts = line.split("\t")
            if len(parts) != len(header):
                raise ValueError(f"line {n}: {len(parts)} fields, the header has {len(header)}")
            out.setdefault((parts[0], parts[2]), {})[parts[1]] = {h: float(v) for h, v in zip(header[3:], parts[3:])}
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise ReportInputError(f"{path}: not a readable per-query reference ({exc})") from None
    return out


def _expect_name(recipe_name: str) -> str:
    stem = recipe_name[: -len(".toml")] if recipe_name.endswith(".toml") else recipe_name
    return stem + EXPECT_SUFFIX


def expect_path_for(run: RunResult) -> "tuple[Path | None, list[Path]]":
    """(the expect file of the run's recipe, or None; every place looked at)."""
    recipe_file = run.recipe_file
    if not recipe_file:
        return None, []
    rf = Path(recipe_file)
    candidates = [rf.with_name(_expect_name(rf.name))]
    posix = recipe_file.replace("\\", "/")
    i = posix.rfind("recipes/")
    if i >= 0:  # the same recipe among the shipped ones (runs made on another machine or checkout)
        shipped = Path(__file__).resolve().parent.parent / "recipes"
        rel = Path(posix[i + len("recipes/"):])
        candidates.append(shipped / rel.parent / _expect_name(rel.name))
    looked: list[Path] = []
    for c in candidates:
        if c not in looked:
            looked.append(c)
        if c.is_file():
            return c, looked
    return None, looked


# ---- checking ---------------------------------------------------------------------------------------

def check_run(run: RunResult, expect: "ExpectFile | None", looked: "list[Path] | None" = None,
              strict: bool = False, allow_missing: bool = False) -> list[Check]:
    """The checks of one run. A run that matches nothing of its expect file (no dataset and measure in
    common: a slice, a typo) is a FAIL, not a vacuous pass, unless ``allow_missing``."""
    return settle(_checks(run, expect, looked, strict, allow_missing))


def _checks(run: RunResult, expect: "ExpectFile | None", looked: "list[Path] | None", strict: bool,
            allow_missing: bool) -> list[Check]:
    """check_run's checks before :func:`settle` judges the drops that had a noise test."""
    out = _check_run(run, expect, looked, strict)
    if expect is not None and not allow_missing and not any(c.status in (OK, OKISH, FAIL) for c in out):
        have = "; ".join(f"{ds}: {', '.join(v)}" for ds, v in run.results.items()) or "nothing"
        want = "; ".join(f"{ds}: {', '.join(v)}" for ds, v in expect.expect.items())
        out.append(Check(FAIL, run.label, message=(
            f"nothing this run evaluated is in {expect.path.name} (the run has {have}; the file expects {want}); "
            "--allow-missing passes such a run")))
    return out


def _check_run(run: RunResult, expect: "ExpectFile | None", looked: "list[Path] | None" = None,
               strict: bool = False) -> list[Check]:
    if expect is None:
        where = ", ".join(str(p) for p in (looked or [])) or "no recipe_file in results.json"
        return [Check(FAIL if strict else NOEXPECT, run.label,
                      message=f"no expect file for this run's recipe (looked for {where})")]
    out = []
    for ds, measures in expect.expect.items():
        got = run.results.get(ds)
        if got is None:  # one line for the whole dataset: a run may evaluate a subset
            out.append(Check(FAIL if strict else SKIP, run.label, ds, message=(
                f"this run did not evaluate {ds} (expected: {', '.join(measures)})")))
            continue
        for m, e in measures.items():
            if m not in got:
                out.append(Check(FAIL if strict else SKIP, run.label, ds, m, message=(
                    f"this run did not evaluate {m} (expected {e.value:.4f} ± {e.tolerance:g})")))
                continue
            actual = float(got[m])
            d = actual - e.value
            slack = 1e-12 * max(1.0, abs(e.value))
            check = Check(OK, run.label, ds, m, actual, e.value, e.tolerance, tested=_pairable(run, expect, ds, m))
            if abs(d) <= e.tolerance + slack:
                pass
            elif d > 0:
                check.status, check.message = OKISH, f"better by {d:.4f}: update the expectation in {expect.path.name}"
            else:
                noise = noise_test(run, expect, ds, m)
                check.status = FAIL
                if noise is None:
                    check.message = f"worse by {-d:.4f} (no per-query reference: the tolerance alone decides)"
                else:  # the verdict waits for the family's correction (settle)
                    check.p, check.how, check.alpha = noise[0], noise[1], expect.alpha
            out.append(check)
    return out


def _paired_queries(run: RunResult, expect: ExpectFile, dataset: str, measure: str) -> list[str]:
    """The queries with a value both in the run and in the reference (none without per-query values)."""
    ref, mine = expect.reference.get((dataset, measure)), run.per_query(dataset)
    return [q for q in mine if q in ref and measure in mine[q]] if ref and mine is not None else []


def _pairable(run: RunResult, expect: ExpectFile, dataset: str, measure: str) -> bool:
    return len(_paired_queries(run, expect, dataset, measure)) >= 2


def settle(checks: list[Check]) -> list[Check]:
    """Each drop beyond its tolerance that had a noise test becomes FAIL when its p-value, Holm-adjusted over
    every check of ``checks`` with per-query values (those without a drop count as p = 1), is under the
    expect file's alpha, else OKish ("within noise")."""
    from harness.report.significance import holm

    family = [c for c in checks if c.tested]
    pending = [c for c in family if c.p is not None]
    if not pending:
        return checks
    adjusted = holm([c.p for c in pending] + [1.0] * (len(family) - len(pending)))
    for c, a in zip(pending, adjusted):
        c.p_holm, drop = float(a), c.expected - c.actual
        over = (f", Holm-adjusted over the {len(family)} checks with per-query values: {a:.3g}"
                if len(family) > 1 else "")
        if a < c.alpha:
            c.status, c.message = FAIL, f"worse by {drop:.4f}, significantly: p = {c.p:.3g}{over} ({c.how})"
        else:
            c.status, c.message = OKISH, (f"worse by {drop:.4f} but within noise: p = {c.p:.3g}{over} "
                                          f">= {c.alpha:g} ({c.how})")
    return checks


def noise_test(run: RunResult, expect: ExpectFile, dataset: str, measure: str) -> "tuple[float, str] | None":
    """(two-sided p, how) of "the run differs from the reference", or None without per-query values.

    A run trained with a seed the reference has is paired, query by query, with that seed's values (a
    paired t-test: only the machine and the code differ). Otherwise it is paired with the reference's
    seed-averaged values and the test's variance adds the seed variance the reference measured:
    z = mean(d) / sqrt(var(d)/n + std² · (1/n_run + 1/n_ref)), d = run - reference per query, std the
    standard deviation over seeds recorded in the expect file (0 when it recorded one seed)."""
    queries = _paired_queries(run, expect, dataset, measure)
    if len(queries) < 2:
        return None
    ref, mine = expect.reference[(dataset, measure)], run.per_query(dataset)
    from harness.report.significance import paired_ttest

    seed = run.payload.get("train_seed") if run.n_seeds == 1 else None
    column = f"seed-{seed}" if seed is not None else None
    if column is not None and all(column in ref[q] for q in queries):
        _, p = paired_ttest([mine[q][measure] for q in queries], [ref[q][column] for q in queries])
        return (1.0 if math.isnan(p) else p), f"paired t-test against the reference's seed {seed}, {len(queries)} queries"
    import numpy as np
    from scipy import stats

    d = np.array([mine[q][measure] - ref[q]["mean"] for q in queries])
    std = expect.expect[dataset][measure].std or 0.0
    n_ref = len(expect.seeds or [0])
    var = float(d.var(ddof=1)) / len(d) + std ** 2 * (1 / run.n_seeds + 1 / n_ref)
    if var <= 0:
        p = 1.0 if d.mean() == 0 else 0.0
    else:
        p = float(2 * stats.norm.sf(abs(d.mean()) / math.sqrt(var)))
    seeds = f"seed std {std:.4f} over {n_ref} seeds" if n_ref > 1 else "one reference seed: no seed variance known"
    return p, f"against the reference's seed mean, {len(queries)} queries, {seeds}"


@dataclass
class GateReport:
    checks: list[Check]
    runs: list[tuple[RunResult, "Path | None"]]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.checks)

    @property
    def failed(self) -> bool:
        return self.count(FAIL) > 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def text(self) -> str:
        w = {k: max([0] + [len(getattr(c, k)) for c in self.checks]) for k in ("recipe", "dataset", "measure")}
        out = []
        for run, path in self.runs:
            note = f" (overrides: {' '.join(run.overrides)})" if run.overrides else ""
            out.append(f"# {run.label}: {run.dir} vs {path if path else 'no expect file'}{note}")
        out += [c.line(w) for c in self.checks]
        out.append(f"check: {self.count(OK)} OK, {self.count(OKISH)} OKish, {self.count(FAIL)} FAIL, "
                   f"{self.count(SKIP)} skipped, {self.count(NOEXPECT)} without an expect file"
                   f" -> {'FAIL' if self.failed else 'pass'}")
        return "\n".join(out) + "\n"

    def junit(self) -> str:
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="harness check", tests=str(len(self.checks)),
                          failures=str(self.count(FAIL)), errors="0",
                          skipped=str(self.count(SKIP) + self.count(NOEXPECT)))
        by_recipe: dict[str, list[Check]] = {}
        for c in self.checks:
            by_recipe.setdefault(c.recipe, []).append(c)
        for recipe, checks in by_recipe.items():
            suite = ET.SubElement(root, "testsuite", name=recipe, tests=str(len(checks)),
                                  failures=str(sum(c.status == FAIL for c in checks)), errors="0",
                                  skipped=str(sum(c.status in (SKIP, NOEXPECT) for c in checks)))
            for c in checks:
                case = ET.SubElement(suite, "testcase", classname=f"{recipe}.{c.dataset}" if c.dataset else recipe,
                                     name=c.measure or ("(dataset)" if c.dataset else "(expect file)"), time="0")
                text = c.line()
                if c.status == FAIL:
                    ET.SubElement(case, "failure", message=c.message or "FAIL", type="FAIL").text = text
                elif c.status in (SKIP, NOEXPECT):
                    ET.SubElement(case, "skipped", message=c.message)
                else:
                    ET.SubElement(case, "system-out").text = text
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def run_gate(runs: list[RunResult], strict: bool = False, allow_missing: bool = False) -> GateReport:
    """Check every run against its recipe's expect file. A malformed expect file raises ReportInputError."""
    checks: list[Check] = []
    seen: list[tuple[RunResult, "Path | None"]] = []
    for run in runs:
        path, looked = expect_path_for(run)
        expect = parse_expect_file(path) if path is not None else None
        checks += _checks(run, expect, looked, strict, allow_missing)
        seen.append((run, path))
    return GateReport(settle(checks), seen)  # one family: every run of the invocation


def write_junit(report: GateReport, path: "str | Path") -> Path:
    try:
        return atomic_write_text(Path(path), report.junit())
    except OSError as exc:
        raise ReportInputError(f"--junit {path}: cannot write there ({exc.strerror or exc})") from None


# ---- writing expectations from a blessed run ----------------------------------------------------------

def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(x: Any) -> str:
    if isinstance(x, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in x.items()) + " }"
    if isinstance(x, str):
        return _toml_str(x)
    return repr(round(float(x), 4))


def expect_text(expect: dict[str, dict[str, Any]], tolerance: float, description: str, header: str,
                seeds: "list[int] | None" = None) -> str:
    """An expect file's text: ``expect`` = {dataset: {measure: value or {value, tolerance, std}}}."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    if description:
        out.append(f"description = {_toml_str(description)}")
    out.append(f"tolerance = {tolerance!r}")
    if seeds:
        out.append(f"seeds = [{', '.join(str(x) for x in seeds)}]      # training seeds of the reference run")
    out.append("")
    for ds in sorted(expect):
        out.append(f"[expect.{_toml_str(ds)}]")
        out += [f"{_toml_str(m)} = {_toml_value(v)}" for m, v in expect[ds].items()]
        out.append("")
    return "\n".join(out)


# overrides that keep a run "the recipe as written": its name and what is evaluated (a slice is its own
# dataset id, e.g. beir/scifact/test[q50]), not what is trained or indexed
WRITABLE_OVERRIDES = ("name", "eval.")


def _train_seeds(run: RunResult) -> "list[int] | None":
    seeds = (run.payload.get("seeds") or {}).get("train_seeds")
    if seeds:
        return [int(x) for x in seeds]
    return [int(run.payload["train_seed"])] if isinstance(run.payload.get("train_seed"), int) else None


def _write_reference(path: Path, run: RunResult, seeds: "list[int] | None", keep_old: bool,
                     measures: "list[str] | None") -> None:
    """The run's per-query values (seed mean, then each seed's) as the reference TSV beside the expect file."""
    from harness.report.results import load_run

    seed_runs: list[RunResult] = []
    if run.n_seeds > 1:
        for d in (run.payload.get("seeds") or {}).get("runs", []):
            where = run.locate(d)
            if where is None:
                seed_runs = []
                break
            seed_runs.append(load_run(where))
    elif seeds:
        seed_runs = [run]
    columns = [f"seed-{k}" for k in seeds] if seeds and len(seed_runs) == len(seeds) else []
    rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    if keep_old and path.is_file():
        rows = {k: v for k, v in read_reference(path).items() if k[0] not in run.results}
        if any(set(vals) != {"mean", *columns} for by_q in rows.values() for vals in by_q.values()):
            rows = {}
    for ds in run.results:
        mean = run.per_query(ds)
        if mean is None:
            continue
        per_seed = [r.per_query(ds) for r in seed_runs] if columns else []
        if any(x is None for x in per_seed):
            per_seed, columns = [], []
        for m in run.results[ds]:
            if measures and m not in measures:
                continue
            rows[(ds, m)] = {q: {"mean": v[m], **{c: ps[q][m] for c, ps in zip(columns, per_seed)}}
                             for q, v in mean.items() if m in v and all(q in ps and m in ps[q] for ps in per_seed)}
    if not rows:
        return
    lines = ["\t".join(["dataset", "query_id", "measure", "mean", *columns])]
    for (ds, m), by_q in sorted(rows.items()):
        for q, vals in by_q.items():
            lines.append("\t".join([ds, q, m, *(f"{vals[c]:.4f}" for c in ("mean", *columns))]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_expect_files(runs: list[RunResult], tolerance: "float | None" = None,
                       measures: "list[str] | None" = None) -> list[tuple[RunResult, "Path | None", str]]:
    """Write (or update) ``<recipe>.expect.toml`` beside each run's recipe from the run's results.

    A run made with ``--set`` overrides other than ``name`` and ``eval.*`` is not its recipe as written, so
    it is skipped. An existing file
    keeps its tolerance, description and the datasets this run did not evaluate; the datasets it did are
    replaced. Returns (run, path written or None, what happened) per run."""
    done: list[tuple[RunResult, "Path | None", str]] = []
    for run in runs:
        if not run.recipe_file:
            done.append((run, None, "skipped: results.json names no recipe file"))
            continue
        changed = [o for o in run.overrides if not o.split("=", 1)[0].strip().startswith(WRITABLE_OVERRIDES)]
        if changed:
            done.append((run, None, f"skipped: made with overrides ({' '.join(changed)}), not the recipe as "
                                    "written"))
            continue
        rf = Path(run.recipe_file)
        path = rf.with_name(_expect_name(rf.name))
        old: dict[str, Any] = {}
        if path.is_file():
            parse_expect_file(path)  # a malformed file is reported, not overwritten
            old = tomllib.loads(path.read_text(encoding="utf-8"))
        tol = tolerance if tolerance is not None else float(old.get("tolerance", DEFAULT_TOLERANCE))
        expect: dict[str, dict[str, Any]] = {ds: dict(ms) for ds, ms in old.get("expect", {}).items()}
        for ds, values in run.results.items():
            keep = expect.get(ds, {})
            expect[ds] = {}
            for m, v in values.items():
                if measures and m not in measures:
                    continue
                prev = keep.get(m)
                entry: dict[str, Any] = {"value": v}
                if isinstance(prev, dict) and "tolerance" in prev:  # a measure's own tolerance stays
                    entry["tolerance"] = prev["tolerance"]
                if run.std(ds, m) is not None:
                    entry["std"] = run.std(ds, m)
                expect[ds][m] = entry if len(entry) > 1 else v
        seeds = _train_seeds(run)
        header = (f"Expected scores of {rf.name} (the regression gate: harness check RUNS).\n"
                  f"Written by `harness check --write-expect` from run {run.dir.name} ({run.finished or 'unknown time'});\n"
                  f"a later --write-expect replaces the datasets it evaluated and keeps the others. Per-query\n"
                  f"values of the reference: {_expect_name(rf.name)[: -len(EXPECT_SUFFIX)]}{REFERENCE_SUFFIX} "
                  f"(a drop beyond the tolerance fails only when a paired test says so).")
        description = old.get("description") or run.description
        old_seeds = old.get("seeds")
        _write_reference(path.with_name(path.name[: -len(EXPECT_SUFFIX)] + REFERENCE_SUFFIX), run, seeds,
                         keep_old=old_seeds == seeds, measures=measures)
        atomic_write_text(path, expect_text(expect, tol, description, header, seeds))
        parse_expect_file(path)  # what we wrote must read back
        done.append((run, path, "updated" if old else "written"))
    return done
