"""Comparison tables: rows = recipes, columns = dataset × measure plus efficiency, against a baseline row.

    table = build_table(load_runs(["runs"]), baseline="bm25-scifact", measures=["nDCG@10", "R@100"])
    table.frame           # pandas: index recipe, columns (dataset, measure) -> value
    table.comparisons     # pandas: recipe, dataset, measure, value, delta, t, p, p_holm, significant
    table.efficiency      # pandas: index recipe, columns (dataset or "", figure) -> number
    table.render("md")    # also "csv", "html", "latex"

The baseline row shows its values; every other effectiveness cell shows ``value (difference)``, marked
with † (and bold) when a paired two-sided t-test over per-query values is significant after Holm's
correction across every comparison in the table (see :mod:`harness.report.significance`). Efficiency
columns: training time, teacher pairs scored for the answer key, index size, non-zero terms per
document (SPLADE) and query latency p50; a column that no row measured is left out. Every rendering ends
with a legend saying all this, so a table pasted anywhere still explains itself.

The renderings are written here, not by pandas' Styler, so they are byte-for-byte deterministic.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.report.results import ReportInputError, RunResult
from harness.report.significance import DEFAULT_ALPHA, compare

FORMATS = ("md", "csv", "html", "latex")
DAGGER = "†"

# (field, header, per dataset?, formatter, description for the legend)
EFFICIENCY_COLUMNS: list[tuple[str, str, bool, str]] = [
    ("train_seconds", "training time", False, "wall time of the student's training"),
    ("teacher_pairs", "teacher pairs", False, "(query, document) pairs the teacher scored for the answer key"),
    ("index_bytes", "index size", True, "the index on disk"),
    ("avg_doc_terms", "terms/doc", True, "non-zero terms per document (SPLADE)"),
    ("latency_ms_p50", "latency p50 (ms)", True,
     "median search time of one query, already encoded, as the index stage measured it (not measured for BM25)"),
]


# ---- number formats ----------------------------------------------------------------------------------

def fmt_value(v: float) -> str:
    return f"{v:.4f}"


def fmt_delta(d: float) -> str:
    return f"{d:+.4f}"


def fmt_bytes(b: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            x = b / scale
            return f"{x:.2f} {unit}" if x < 10 else f"{x:.1f} {unit}" if x < 100 else f"{x:.0f} {unit}"
    return f"{int(b)} B"


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


FORMATTERS: dict[str, Callable[[float], str]] = {
    "train_seconds": fmt_seconds,
    "teacher_pairs": lambda v: f"{int(v):,}",
    "index_bytes": fmt_bytes,
    "avg_doc_terms": lambda v: f"{v:.1f}",
    "latency_ms_p50": lambda v: f"{v:.1f}",
}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# ---- the table -------------------------------------------------------------------------------------

@dataclass
class Cell:
    value: "float | None"
    delta: "float | None" = None
    p_holm: "float | None" = None
    significant: bool = False
    text: str = "–"  # the value as shown (± std over seeds, [bootstrap CI]), without the difference and marks
    std: "float | None" = None  # over training seeds (multi-seed runs)
    ci: "tuple[float, float] | None" = None  # bootstrap 95% CI of the mean over queries (--ci)


@dataclass
class Column:
    key: str  # CSV column name
    header: str  # shown header
    dataset: str  # "" for recipe-level figures
    name: str  # measure or efficiency field
    effectiveness: bool


@dataclass
class Table:
    runs: list[RunResult]
    baseline: RunResult
    datasets: list[str]
    measures: list[str]
    alpha: float
    comparisons: Any  # pandas DataFrame
    frame: Any = None
    efficiency: Any = None
    columns: list[Column] = field(default_factory=list)
    ci: bool = False  # show a bootstrap 95% confidence interval in every effectiveness cell

    def part(self, effectiveness: bool) -> "Table":
        """The same table with only its effectiveness columns (True) or only its efficiency columns (False)."""
        import copy

        out = copy.copy(self)
        out.columns = [c for c in self.columns if c.effectiveness == effectiveness]
        return out

    @property
    def has_effectiveness(self) -> bool:
        return any(c.effectiveness for c in self.columns)

    @property
    def seeded(self) -> bool:
        return any(r.n_seeds > 1 for r in self.runs)

    # ---- the grid every format renders -----------------------------------------------------------

    def cells(self, run: RunResult) -> list[Cell]:
        out = []
        for col in self.columns:
            if col.effectiveness:
                v = run.results.get(col.dataset, {}).get(col.name)
                if v is None:
                    out.append(Cell(None))
                    continue
                cell = Cell(float(v), text=fmt_value(float(v)), std=run.std(col.dataset, col.name))
                if cell.std is not None:
                    cell.text += f" ± {fmt_value(cell.std)}"
                if self.ci:
                    cell.ci = self._ci(run, col.dataset, col.name)
                    if cell.ci is not None:
                        cell.text += f" [{fmt_value(cell.ci[0])}, {fmt_value(cell.ci[1])}]"
                if run is not self.baseline:
                    hit = self._comparison(run.label, col.dataset, col.name)
                    if hit is not None and not _missing(hit["delta"]):
                        cell.delta = float(hit["delta"])
                        cell.p_holm = None if _missing(hit["p_holm"]) else float(hit["p_holm"])
                        cell.significant = bool(hit["significant"])
                out.append(cell)
            else:
                v = self.efficiency.loc[run.label, (col.dataset, col.name)]
                out.append(Cell(None) if _missing(v) else Cell(float(v), text=FORMATTERS[col.name](float(v))))
        return out

    def _ci(self, run: RunResult, dataset: str, measure: str) -> "tuple[float, float] | None":
        from harness.report.significance import bootstrap_ci

        per_query = run.per_query(dataset)
        if not per_query:
            return None
        values = [v[measure] for v in per_query.values() if measure in v]
        return bootstrap_ci(values) if values else None

    def _comparison(self, label: str, dataset: str, measure: str) -> "dict | None":
        c = self.comparisons
        hit = c[(c["recipe"] == label) & (c["dataset"] == dataset) & (c["measure"] == measure)]
        return None if hit.empty else hit.iloc[0].to_dict()

    @property
    def rows(self) -> list[RunResult]:
        return [self.baseline] + [r for r in self.runs if r is not self.baseline]

    @property
    def n_tests(self) -> int:
        return int(self.comparisons["p"].notna().sum()) if len(self.comparisons) else 0

    def legend_lines(self) -> list[str]:
        """The legend as plain sentences (each renderer marks up the recipe name itself)."""
        if not self.has_effectiveness:
            lines = []
        elif len(self.rows) == 1:
            lines = [f"Baseline: {self.baseline.label} (the only run: nothing to compare)."]
        else:
            lines = [f"Baseline: {self.baseline.label}. Other cells: value (difference from the baseline); "
                     f"{DAGGER} and bold: significant at α = {self.alpha:g} by a paired two-sided t-test over "
                     f"per-query values, Holm-corrected across the {self.n_tests} comparisons in this table."]
        untested = int((self.comparisons["delta"].notna() & self.comparisons["p"].isna()).sum()) \
            if len(self.comparisons) else 0
        if untested and self.has_effectiveness:
            lines.append(f"{untested} differences were not tested (no per-query values for one side, or fewer "
                         "than two queries in common); they are never marked.")
        if len(self.datasets) == 1:
            ds = self.datasets[0]
            n = self.baseline.payload.get("queries", {}).get(ds)
            lines.append(f"Dataset: {ds}" + (f" ({n} queries)." if n else "."))
        if self.seeded and self.has_effectiveness:
            lines.append("Runs trained with several seeds (n beside the recipe): mean ± sample standard deviation "
                         "over the seeds; their per-query values, averaged over the seeds, feed the tests.")
        if self.ci and self.has_effectiveness:
            lines.append("[low, high]: 95% percentile bootstrap confidence interval of the mean over queries "
                         "(10,000 resamples of the queries).")
        eff = [(h, d) for f, h, _, d in EFFICIENCY_COLUMNS if any(c.name == f for c in self.columns)]
        if eff:
            lines.append("Efficiency: " + "; ".join(f"{h}: {d}" for h, d in eff) + ". –: not measured.")
        return lines

    # ---- renderings --------------------------------------------------------------------------------

    def render(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ReportInputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return {"md": self.to_markdown, "csv": self.to_csv, "html": self.to_html, "latex": self.to_latex}[fmt]()

    def _label(self, run: RunResult) -> str:
        return run.label + (f" (n={run.n_seeds})" if run.n_seeds > 1 else "") + \
            (" (baseline)" if run is self.baseline else "")

    def to_markdown(self) -> str:
        head = ["recipe"] + [c.header for c in self.columns]
        lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |",
                 "|" + "---|" + "---:|" * len(self.columns)]
        for run in self.rows:
            cells = []
            for cell in self.cells(run):
                if cell.value is None:
                    cells.append("–")
                    continue
                text = f"**{cell.text}**" if cell.significant else cell.text
                if cell.delta is not None:
                    text += f" ({fmt_delta(cell.delta)})" + (DAGGER if cell.significant else "")
                cells.append(text)
            lines.append("| " + " | ".join([_md_escape(self._label(run))] + cells) + " |")
        return "\n".join(lines) + "\n\n" + "\n".join(_md_escape(x) for x in self.legend_lines()) + "\n"

    def to_csv(self) -> str:
        """One row per recipe, plain numbers: value, delta, Holm p and the mark of every comparison."""
        import csv
        import io

        seeded = self.seeded
        header = ["recipe", "method", "baseline"] + (["seeds"] if seeded else [])
        for c in self.columns:
            header.append(c.key)
            if c.effectiveness:
                header += ([f"{c.key}:std"] if seeded else []) + ([f"{c.key}:ci_low", f"{c.key}:ci_high"]
                                                                   if self.ci else [])
                header += [f"{c.key}:delta", f"{c.key}:p_holm", f"{c.key}:significant"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for run in self.rows:
            row: list[Any] = [run.label, run.method, run is self.baseline] + ([run.n_seeds] if seeded else [])
            for c, cell in zip(self.columns, self.cells(run)):
                row.append("" if cell.value is None else _num(cell.value))
                if c.effectiveness:
                    if seeded:
                        row.append("" if cell.std is None else _num(cell.std))
                    if self.ci:
                        row += ["", ""] if cell.ci is None else [_num(cell.ci[0]), _num(cell.ci[1])]
                    row += ["" if cell.delta is None else _num(cell.delta),
                            "" if cell.p_holm is None else f"{cell.p_holm:.6g}",
                            cell.significant if cell.delta is not None else ""]
            w.writerow(row)
        return buf.getvalue()

    def to_html(self) -> str:
        """A <table> (sortable by :mod:`harness.report.leaderboard`'s script: data-sort on every cell)."""
        out = ['<table class="harness-table">', "<thead>", "<tr>",
               '<th data-type="text" scope="col">recipe</th>']
        for c in self.columns:
            out.append(f'<th data-type="number" scope="col">{html.escape(c.header)}</th>')
        out += ["</tr>", "</thead>", "<tbody>"]
        for run in self.rows:
            cls = ' class="baseline"' if run is self.baseline else ""
            out.append(f"<tr{cls}>")
            out.append(f'<th scope="row" data-sort="{html.escape(run.label)}">{html.escape(self._label(run))}</th>')
            for cell in self.cells(run):
                if cell.value is None:
                    out.append('<td data-sort="">–</td>')
                    continue
                text = html.escape(cell.text)
                if cell.significant:
                    text = f"<strong>{text}</strong>"
                if cell.delta is not None:
                    p = "" if cell.p_holm is None else f"Holm-corrected p = {cell.p_holm:.3g}"
                    text += (f' <span class="delta" title="{p}">({html.escape(fmt_delta(cell.delta))})'
                             f'{DAGGER if cell.significant else ""}</span>')
                sig = ' class="significant"' if cell.significant else ""
                out.append(f'<td{sig} data-sort="{_num(cell.value)}">{text}</td>')
            out.append("</tr>")
        out += ["</tbody>", "</table>"]
        out += [f'<p class="legend">{html.escape(line)}</p>' for line in self.legend_lines()]
        return "\n".join(out) + "\n"

    def to_latex(self) -> str:
        """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``), the legend as its caption."""
        spec = "l" + "r" * len(self.columns)
        out = ["% generated by harness table; needs \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering",
               "\\small", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        if len(self.datasets) > 1:  # a first header row that spans each dataset's columns
            groups: list[tuple[str, int]] = []
            for c in self.columns:
                if groups and groups[-1][0] == c.dataset:
                    groups[-1] = (c.dataset, groups[-1][1] + 1)
                else:
                    groups.append((c.dataset, 1))
            parts, rules, col = [""], [], 2
            for ds, n in groups:
                parts.append(f"\\multicolumn{{{n}}}{{c}}{{{_tex(ds)}}}" if ds else
                             " & ".join([""] * n) if n > 1 else "")
                if ds:
                    rules.append(f"\\cmidrule(lr){{{col}-{col + n - 1}}}")
                col += n
            out.append(" & ".join(parts) + " \\\\")
            out.append(" ".join(rules))
            heads = [self._short_header(c) for c in self.columns]
        else:
            heads = [c.header for c in self.columns]
        out.append(" & ".join(["Recipe"] + [_tex(h) for h in heads]) + " \\\\")
        out.append("\\midrule")
        for run in self.rows:
            cells = []
            for cell in self.cells(run):
                if cell.value is None:
                    cells.append("--")
                    continue
                text = f"\\textbf{{{_tex(cell.text)}}}" if cell.significant else _tex(cell.text)
                if cell.delta is not None:
                    text += f" ({_tex(fmt_delta(cell.delta))})" + ("$^\\dagger$" if cell.significant else "")
                cells.append(text)
            out.append(" & ".join([_tex(self._label(run))] + cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        caption = " ".join(self.legend_lines()).replace(DAGGER, "\x00")
        out.append("\\caption{" + _tex(caption).replace("\x00", "$^\\dagger$").replace("α", "$\\alpha$") + "}")
        out.append("\\end{table}")
        return "\n".join(out) + "\n"

    def _short_header(self, c: Column) -> str:
        return c.name if c.effectiveness else dict((f, h) for f, h, _, _ in EFFICIENCY_COLUMNS)[c.name]


def _num(v: float) -> str:
    return f"{v:.6g}" if abs(v) < 1e6 else f"{v:.0f}"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


_TEX = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{",
        "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "–": "--"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


# ---- building -----------------------------------------------------------------------------------------

def pick_baseline(runs: list[RunResult], name: "str | None") -> RunResult:
    """The run labelled (or recipe-named) ``name``; by default the first BM25 run, else the first run."""
    if not runs:
        raise ReportInputError("no runs to tabulate")
    if name:
        for r in runs:
            if r.label == name:
                return r
        hits = [r for r in runs if r.recipe == name]
        if len(hits) == 1:
            return hits[0]
        raise ReportInputError(f"--baseline: no run named {name!r} among {', '.join(r.label for r in runs)}"
                               if not hits else f"--baseline: {name!r} names {len(hits)} runs; use one of "
                               f"{', '.join(r.label for r in hits)}")
    return next((r for r in runs if r.method == "bm25"), runs[0])


def build_table(runs: list[RunResult], baseline: "str | None" = None, measures: "list[str] | None" = None,
                datasets: "list[str] | None" = None, alpha: float = DEFAULT_ALPHA, ci: bool = False) -> Table:
    import pandas as pd

    base = pick_baseline(runs, baseline)
    all_datasets = list(dict.fromkeys(ds for r in [base, *runs] for ds in r.datasets))
    if datasets:
        unknown = [d for d in datasets if d not in all_datasets]
        if unknown:
            raise ReportInputError(f"--datasets: {', '.join(unknown)} not in any run "
                                   f"(runs have {', '.join(all_datasets)})")
        all_datasets = list(datasets)
    all_measures = list(dict.fromkeys(m for r in [base, *runs] for ds in all_datasets
                                      for m in r.results.get(ds, {})))
    if measures:
        unknown = [m for m in measures if m not in all_measures]
        if unknown:
            raise ReportInputError(f"--measures: {', '.join(unknown)} not in any run "
                                   f"(runs have {', '.join(all_measures)})")
        all_measures = list(measures)
    ordered = [base] + [r for r in runs if r is not base]

    comparisons = compare(ordered, base, all_measures, all_datasets, alpha)
    frame = pd.DataFrame(
        [[r.results.get(ds, {}).get(m, math.nan) for ds in all_datasets for m in all_measures] for r in ordered],
        index=pd.Index([r.label for r in ordered], name="recipe"),
        columns=pd.MultiIndex.from_tuples([(ds, m) for ds in all_datasets for m in all_measures],
                                          names=["dataset", "measure"]))
    eff_cols = [(("" if not per_ds else ds), f) for f, _, per_ds, _ in EFFICIENCY_COLUMNS
                for ds in (all_datasets if per_ds else [""])]
    eff_rows = []
    for r in ordered:
        eff = {ds: r.efficiency(ds) for ds in all_datasets if ds in r.results}
        any_eff = next(iter(eff.values()), {})
        eff_rows.append([(eff.get(ds, {}) if ds else any_eff).get(f) for ds, f in eff_cols])
    efficiency = pd.DataFrame(eff_rows, index=frame.index, columns=pd.MultiIndex.from_tuples(
        eff_cols, names=["dataset", "figure"]), dtype=float)
    efficiency = efficiency.loc[:, efficiency.notna().any(axis=0)]  # a figure nobody measured: no column

    single = len(all_datasets) == 1
    columns = [Column(key=f"{ds}:{m}", header=m if single else f"{ds} {m}", dataset=ds, name=m, effectiveness=True)
               for ds in all_datasets for m in all_measures]
    headers = {f: h for f, h, _, _ in EFFICIENCY_COLUMNS}
    order = [("", f) for f, _, per_ds, _ in EFFICIENCY_COLUMNS if not per_ds] + \
        [(ds, f) for ds in all_datasets for f, _, per_ds, _ in EFFICIENCY_COLUMNS if per_ds]
    for ds, f in order:  # recipe-level figures first, then each dataset's
        if (ds, f) in efficiency.columns:
            columns.append(Column(key=f if not ds else f"{ds}:{f}",
                                  header=headers[f] if single or not ds else f"{ds} {headers[f]}",
                                  dataset=ds, name=f, effectiveness=False))
    return Table(runs=ordered, baseline=base, datasets=all_datasets, measures=all_measures, alpha=alpha,
                 comparisons=comparisons, frame=frame, efficiency=efficiency, columns=columns, ci=ci)
