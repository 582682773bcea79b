"""Leaderboards: ``leaderboards/<suite>/`` built by one command from the runs' own result files.

    leaderboards/<suite>/
      README.md                  per dataset: the effectiveness table (mean ± std over seeds, difference from
                                 the baseline, significance marks); the efficiency table; per student family,
                                 the matrix of its variants tested pairwise (Holm) and the groups that cannot
                                 be told apart; the plots; the runs
      results.csv                every figure in one wide table, plain numbers (value, std, delta, Holm p, mark)
      index.html                 one self-contained page with the same sections, every table sortable by
                                 clicking any header (plain JavaScript inline, no CDN: it works offline)
      efficiency-<dataset>.png/.svg, training-loss.png/.svg

Inputs are result files only (``runs/<recipe>/results.json`` and the files they name), one per run, so
runs made by several processes or machines are merged by listing them; nothing is appended to a shared
file. Every output is written atomically (:mod:`harness.report.files`), so concurrent builds of the
same leaderboard each publish complete files. Nothing in the output depends on the clock: the date
shown is the latest run's finishing time, so a rebuild from the same runs gives the same bytes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.store import cold_cache_seconds
from harness.report.files import atomic_write_text
from harness.report.matrix import Matrix, family_matrices
from harness.report.plots import plots_for_runs
from harness.report.results import RunResult
from harness.report.tables import Table, build_table, fmt_seconds

SORT_SCRIPT = r"""
(function () {
  "use strict";
  function key(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (!numeric) { return raw; }
    var x = parseFloat(raw);
    return isNaN(x) ? null : x;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.harness-table"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      th.title = "sort by this column";
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
          if (x === null || y === null || x === "" || y === "") {   /* unmeasured cells sort last */
            return (x === null || x === "") - (y === null || y === "");
          }
          var c = numeric ? x - y : x.localeCompare(y);
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
})();
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #222; }
table.harness-table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
table.harness-table th, table.harness-table td { padding: 0.35em 0.7em; border-bottom: 1px solid #ddd; }
table.harness-table td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.harness-table tbody th { text-align: left; font-weight: normal; white-space: nowrap; }
table.harness-table thead th { cursor: pointer; user-select: none; background: #f4f4f4;
                               border-bottom: 2px solid #999; }
table.harness-table thead th:hover { background: #e8e8e8; }
table.harness-table thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.harness-table thead th[aria-sort="descending"]::after { content: " \\25BC"; }
table.harness-table tr.baseline { background: #f7f7ff; }
td.significant strong { color: #000; }
.delta { color: #666; }
p.legend { font-size: 0.85em; color: #555; max-width: 60em; }
table.runs { border-collapse: collapse; font-size: 0.85em; }
table.runs th, table.runs td { text-align: left; padding: 0.25em 0.7em; border-bottom: 1px solid #eee;
                               vertical-align: top; }
figure { display: inline-block; margin: 1em 1em 1em 0; }
figure img { max-width: 36em; width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
"""


def _recipe_file(r: RunResult) -> str:
    f = r.recipe_file or ""
    i = f.rfind("recipes/")
    return f[i:] if i >= 0 else Path(f).name


def _compute_seconds(r: RunResult) -> "float | None":
    """The build time of every stage the run needs (older result files: the run's own wall time)."""
    s = r.payload.get("compute_seconds", r.payload.get("seconds"))
    return float(s) if isinstance(s, (int, float)) else None


def _compute(r: RunResult) -> str:
    s = _compute_seconds(r)
    return "–" if s is None else fmt_seconds(s)


def _total_compute(runs: list[RunResult]) -> str:
    if not runs:
        return ""
    total = cold_cache_seconds(r.payload for r in runs)
    return f"{fmt_seconds(total)} ({total:,.0f} s)" if total >= 60 else fmt_seconds(total)


COMPUTE_LEGEND = ("Compute time: the build time of every stage a run needs, i.e. what the run costs alone from "
                  "an empty cache (stages it shares with other runs, such as the BM25 index, the teacher and "
                  "the answer key, count in each; re-running a finished run reuses them and does not change "
                  "this figure). All runs together from an empty cache, each stage built once: {total}.")


def _built_at(runs: list[RunResult]) -> str:
    return max((r.finished for r in runs if r.finished), default="")


@dataclass
class Sections:
    """What a leaderboard shows, in order: one effectiveness table per dataset, the efficiency table, the
    matrices of each family's variants, the plots and the runs."""

    full: Table  # the wide all-in-one table (results.csv)
    per_dataset: list[tuple[str, Table]]
    efficiency: Table
    matrices: list[Matrix]
    plots: dict[str, list[Path]]


def _readme(suite: str, sec: Sections, runs: list[RunResult], command: str) -> str:
    table = sec.full
    out = [f"# Leaderboard: {suite}", ""]
    built = _built_at(runs)
    out += [f"{len(runs)} runs" + (f", the latest finished {built}" if built else "") +
            f". Built from the runs' result files by `{command}`; open `index.html` for sortable tables, "
            "`results.csv` has every figure in one wide table.", ""]
    for ds, t in sec.per_dataset:
        out += [f"## {ds}", "", t.to_markdown().rstrip("\n"), ""]
    if sec.efficiency.columns:
        out += ["## Efficiency", "", sec.efficiency.to_markdown().rstrip("\n"), ""]
    if sec.matrices:
        out += ["## Can the variants be told apart?", "",
                "Within each student family, every variant against every other (row minus column).", ""]
        for m in sec.matrices:
            out += [f"### {m.title()}", "", m.to_markdown().rstrip("\n"), ""]
    for name, files in sec.plots.items():
        svg = next((p for p in files if p.suffix == ".svg"), files[0])
        out += [f"## {name[0].upper()}{name[1:]}", "", f"![{name}]({svg.name})", ""]
    out += ["## Runs", "", "| recipe | method | description | recipe file | overrides | compute time |",
            "|---|---|---|---|---|---:|"]
    for r in table.rows:
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in (
            r.label, r.method, r.description, _recipe_file(r), " ".join(f"`{o}`" for o in r.overrides),
            _compute(r))) + " |")
    total = _total_compute(table.rows)
    if total:
        out += ["", COMPUTE_LEGEND.format(total=total)]
    for r in table.rows:
        for w in r.payload.get("warnings") or []:
            out.append(f"\n> **{r.label}**: {w}")
    return "\n".join(out) + "\n"


def _page(suite: str, sec: Sections, runs: list[RunResult], command: str) -> str:
    e = html.escape
    table = sec.full
    built = _built_at(runs)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Leaderboard: {e(suite)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           f"<h1>Leaderboard: {e(suite)}</h1>",
           f"<p>{len(runs)} runs" + (f", the latest finished {e(built)}" if built else "") +
           f". Built from the runs' result files by <code>{e(command)}</code>. Click a column header to sort.</p>"]
    for ds, t in sec.per_dataset:
        out += ['<section class="dataset">', f"<h2>{e(ds)}</h2>", t.to_html().rstrip("\n"), "</section>"]
    if sec.efficiency.columns:
        out += ['<section class="efficiency">', "<h2>Efficiency</h2>", sec.efficiency.to_html().rstrip("\n"),
                "</section>"]
    if sec.matrices:
        out += ['<section class="matrices">', "<h2>Can the variants be told apart?</h2>",
                "<p>Within each student family, every variant against every other (row minus column).</p>"]
        for m in sec.matrices:
            out += [f"<h3>{e(m.title())}</h3>", m.to_html().rstrip("\n")]
        out.append("</section>")
    if sec.plots:
        out.append("<h2>Plots</h2>")
        for name, files in sec.plots.items():
            svg = next((p for p in files if p.suffix == ".svg"), files[0])
            png = next((p for p in files if p.suffix == ".png"), files[0])
            out.append(f'<figure><a href="{e(png.name)}"><img src="{e(svg.name)}" alt="{e(name)}"></a>'
                       f"<figcaption>{e(name)}</figcaption></figure>")
    out += ["<h2>Runs</h2>", '<table class="runs">', "<tr><th>recipe</th><th>method</th><th>description</th>"
            "<th>recipe file</th><th>overrides</th><th>compute time</th></tr>"]
    for r in table.rows:
        out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in (
            r.label, r.method, r.description, _recipe_file(r), " ".join(r.overrides), _compute(r))) + "</tr>")
    out += ["</table>"]
    total = _total_compute(table.rows)
    if total:
        out.append(f"<p>{e(COMPUTE_LEGEND.format(total=total))}</p>")
    out += [f"<script>{SORT_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def build_leaderboard(runs: list[RunResult], suite: str, out_dir: Path, baseline: "str | None" = None,
                      measures: "list[str] | None" = None, datasets: "list[str] | None" = None,
                      alpha: float = 0.05, plot_measure: str = "nDCG@10", ci: bool = False) -> dict[str, Path]:
    """Write the leaderboard of ``runs`` into ``out_dir``; returns {name: path} of what it wrote."""
    out_dir = Path(out_dir)
    table = build_table(runs, baseline=baseline, measures=measures, datasets=datasets, alpha=alpha)
    plots = plots_for_runs(table.rows, out_dir, measure=plot_measure, datasets=table.datasets)
    per_dataset = [(ds, build_table(runs, baseline=table.baseline.label, measures=[
        m for m in table.measures if any(m in r.results.get(ds, {}) for r in runs)], datasets=[ds],
        alpha=alpha, ci=ci).part(effectiveness=True)) for ds in table.datasets]
    primary = plot_measure if plot_measure in table.measures else table.measures[0]
    sec = Sections(full=table, per_dataset=per_dataset, efficiency=table.part(effectiveness=False),
                   matrices=family_matrices(table.rows, table.datasets, primary, alpha), plots=plots)
    command = f"harness leaderboard RUNS --suite {suite} --baseline {table.baseline.label}"
    if measures:
        command += " --measures " + " ".join(measures)
    if datasets:
        command += " --datasets " + " ".join(datasets)
    if ci:
        command += " --ci"
    written = {
        "README.md": atomic_write_text(out_dir / "README.md", _readme(suite, sec, table.rows, command)),
        "results.csv": atomic_write_text(out_dir / "results.csv", table.to_csv()),
        "index.html": atomic_write_text(out_dir / "index.html", _page(suite, sec, table.rows, command)),
    }
    for files in plots.values():
        for p in files:
            written[p.name] = p
    return written
