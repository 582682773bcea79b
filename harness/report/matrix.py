"""Which variants of one student family can be told apart? Pairwise tests between methods.

For one family (dense, SPLADE, ColBERT), one dataset and one measure: every pair of its variants (static,
online, self, margin, multitask, untrained …) is tested with a paired two-sided t-test over per-query values
(a multi-seed run's are averaged over its seeds), and the p-values of all the pairs are Holm-corrected
together. The matrix cell (row, column) is mean(row) - mean(column), marked † when the corrected p < alpha.

"Groups that cannot be told apart": the variants sorted by mean; each group is a maximal run of neighbours in
that order whose every pair is indistinguishable (the homogeneous subsets of a post-hoc test). A variant in
no group with another is distinguishable from all its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

from harness.report.results import RunResult
from harness.report.significance import DEFAULT_ALPHA, holm, paired_ttest

DAGGER = "†"
SHOWN = {"none": "untrained"}  # variant names as tables show them


def family_of(run: RunResult) -> "tuple[str, str] | None":
    """(student family, distillation variant) of a student run, from its manifest's recipe config."""
    if run.method != "student":
        return None
    cfg = (run.manifest or {}).get("config") or {}
    family = (cfg.get("student") or {}).get("family")
    variant = (cfg.get("distill") or {}).get("variant", "static")
    return (str(family), str(variant)) if family else None


@dataclass
class Matrix:
    family: str
    dataset: str
    measure: str
    alpha: float
    names: list[str]  # row/column labels, best mean first
    runs: list[RunResult]
    means: list[float]
    delta: list[list[float]] = field(default_factory=list)
    p_holm: list[list[float]] = field(default_factory=list)
    n_queries: int = 0

    def significant(self, i: int, j: int) -> bool:
        p = self.p_holm[i][j]
        return not math.isnan(p) and p < self.alpha

    @property
    def n_pairs(self) -> int:
        return len(self.names) * (len(self.names) - 1) // 2

    def groups(self) -> list[list[str]]:
        """Maximal runs of neighbours (best first) with no significant pair inside."""
        k = len(self.names)
        spans = []
        for start in range(k):
            end = start
            while end + 1 < k and all(not self.significant(a, end + 1) for a in range(start, end + 1)):
                end += 1
            if end > start and not any(s <= start and end <= e for s, e in spans):
                spans.append((start, end))
        return [self.names[s:e + 1] for s, e in spans]

    def groups_text(self) -> str:
        groups = self.groups()
        alone = [n for n in self.names if not any(n in g for g in groups)]
        parts = ["{" + ", ".join(g) + "}" for g in groups]
        text = "; ".join(parts) if parts else "none: every pair of neighbours differs"
        if alone and parts:
            text += "; told apart from their neighbours: " + ", ".join(alone)
        return text

    def title(self) -> str:
        return f"{self.family}: {self.dataset} {self.measure}"

    def legend(self) -> str:
        return (f"Cell: {self.measure} of the row minus the column's (seed means where runs have several seeds); "
                f"{DAGGER}: significant at α = {self.alpha:g} by a paired two-sided t-test over {self.n_queries} "
                f"queries, Holm-corrected across the {self.n_pairs} pairs. Cannot be told apart: "
                f"{self.groups_text()}.")

    def to_markdown(self) -> str:
        lines = ["| row − column | mean | " + " | ".join(self.names) + " |",
                 "|---|---:|" + "---:|" * len(self.names)]
        for i, name in enumerate(self.names):
            cells = []
            for j in range(len(self.names)):
                if i == j:
                    cells.append("")
                elif math.isnan(self.delta[i][j]):
                    cells.append("–")
                else:
                    cells.append(f"{self.delta[i][j]:+.4f}" + (DAGGER if self.significant(i, j) else ""))
            lines.append(f"| {name} | {self.means[i]:.4f} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n" + self.legend() + "\n"

    def to_html(self) -> str:
        import html

        e = html.escape
        out = ['<table class="harness-table matrix">', "<thead><tr>", '<th data-type="text">row − column</th>',
               '<th data-type="number">mean</th>']
        out += [f'<th data-type="number">{e(n)}</th>' for n in self.names]
        out += ["</tr></thead>", "<tbody>"]
        for i, name in enumerate(self.names):
            out.append(f'<tr><th scope="row" data-sort="{e(name)}">{e(name)}</th>'
                       f'<td data-sort="{self.means[i]:.6g}">{self.means[i]:.4f}</td>')
            for j in range(len(self.names)):
                d = self.delta[i][j]
                if i == j or math.isnan(d):
                    out.append('<td data-sort="">' + ("" if i == j else "–") + "</td>")
                    continue
                sig = self.significant(i, j)
                p = self.p_holm[i][j]
                title = "" if math.isnan(p) else f' title="Holm-corrected p = {p:.3g}"'
                out.append(f'<td data-sort="{d:.6g}"{title}' + (' class="significant"' if sig else "") + ">"
                           + (f"<strong>{d:+.4f}</strong>{DAGGER}" if sig else f"{d:+.4f}") + "</td>")
            out.append("</tr>")
        out += ["</tbody>", "</table>", f'<p class="legend">{e(self.legend())}</p>']
        return "\n".join(out) + "\n"


def variant_matrix(runs: list[RunResult], family: str, dataset: str, measure: str,
                   alpha: float = DEFAULT_ALPHA) -> "Matrix | None":
    """The pairwise matrix of ``runs`` (one family's variants); None when fewer than two have the cell."""
    rows = []
    for r in runs:
        pq = r.per_query(dataset)
        if measure in r.results.get(dataset, {}) and pq:
            rows.append((r, pq))
    if len(rows) < 2:
        return None
    rows.sort(key=lambda x: (-float(x[0].results[dataset][measure]), x[0].label))
    names = [SHOWN.get(v, v) for v in ((family_of(r) or ("", r.label))[1] for r, _ in rows)]
    if len(set(names)) < len(names):  # two runs of one variant (e.g. different settings): use labels
        names = [r.label for r, _ in rows]
    k = len(rows)
    delta = [[math.nan] * k for _ in range(k)]
    pvals: dict[tuple[int, int], float] = {}
    n_common = set.intersection(*(set(pq) for _, pq in rows))
    for i, j in combinations(range(k), 2):
        (_, a), (_, b) = rows[i], rows[j]
        qs = [q for q in a if q in b and measure in a[q] and measure in b[q]]
        x, y = [a[q][measure] for q in qs], [b[q][measure] for q in qs]
        d = (math.fsum(x) - math.fsum(y)) / len(qs) if qs else math.nan
        delta[i][j], delta[j][i] = d, -d if not math.isnan(d) else d
        pvals[(i, j)] = paired_ttest(x, y)[1] if len(qs) >= 2 else math.nan
    adjusted = holm(list(pvals.values()))
    p_holm = [[math.nan] * k for _ in range(k)]
    for (i, j), p in zip(pvals, adjusted):
        p_holm[i][j] = p_holm[j][i] = float(p)
    return Matrix(family=family, dataset=dataset, measure=measure, alpha=alpha, names=names,
                  runs=[r for r, _ in rows], means=[float(r.results[dataset][measure]) for r, _ in rows],
                  delta=delta, p_holm=p_holm, n_queries=len(n_common))


def family_matrices(runs: list[RunResult], datasets: list[str], measure: str,
                    alpha: float = DEFAULT_ALPHA) -> list[Matrix]:
    """One matrix per (family, dataset) of the student runs among ``runs`` (families in first-seen order)."""
    families: dict[str, list[RunResult]] = {}
    for r in runs:
        fv = family_of(r)
        if fv:
            families.setdefault(fv[0], []).append(r)
    out = []
    for family, members in families.items():
        for ds in datasets:
            m = variant_matrix(members, family, ds, measure, alpha)
            if m is not None:
                out.append(m)
    return out
