"""Run A against run B: ``harness compare RUN_A RUN_B``.

For every dataset and measure both runs evaluated, A's and B's per-query values (a multi-seed run's are
averaged over its seeds) are paired on the queries both have and tested with a two-sided paired t-test.
Each comparison reports the mean difference A - B, its confidence interval (t distribution, level 1 - alpha),
Cohen's d_z (mean difference / standard deviation of the differences) and a verdict: "A better", "B better"
or "indistinguishable" at alpha. With several comparisons their p-values are Holm-corrected together, so
the chance of any wrong verdict stays at or below alpha; the verdicts use the corrected p.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from harness.report.results import ReportInputError, RunResult
from harness.report.significance import DEFAULT_ALPHA, PairedComparison, holm, paired_comparison


@dataclass
class Row:
    dataset: str
    measure: str
    test: PairedComparison
    p_holm: float

    @property
    def verdict(self) -> str:
        if math.isnan(self.p_holm) or self.p_holm >= self.test.alpha or self.test.delta == 0:
            return "indistinguishable"
        return "A better" if self.test.delta > 0 else "B better"


@dataclass
class CompareReport:
    a: RunResult
    b: RunResult
    rows: list[Row]
    alpha: float

    @property
    def a_worse(self) -> bool:
        return any(r.verdict == "B better" for r in self.rows)

    def _name(self, run: RunResult) -> str:
        return run.label + (f" (mean of {run.n_seeds} seeds)" if run.n_seeds > 1 else "")

    def text(self) -> str:
        lines = [f"A: {self._name(self.a)}  ({self.a.dir})", f"B: {self._name(self.b)}  ({self.b.dir})"]
        w = max(len("dataset"), *(len(r.dataset) for r in self.rows))
        level = f"{100 * (1 - self.alpha):g}% CI"
        lines.append(f"{'dataset':<{w}}  {'measure':<10} {'n':>5}  {'A':>7}  {'B':>7}  {'A - B':>8}  "
                     f"{level:^20}  {'d_z':>6}  {'p':>8}  {'p_holm':>8}  verdict")
        for r in self.rows:
            t = r.test
            lines.append(f"{r.dataset:<{w}}  {r.measure:<10} {t.n:>5}  {t.mean_a:>7.4f}  {t.mean_b:>7.4f}  "
                         f"{t.delta:>+8.4f}  [{t.ci_low:+.4f}, {t.ci_high:+.4f}]  {t.effect_size:>6.2f}  "
                         f"{_p(t.p):>8}  {_p(r.p_holm):>8}  {r.verdict}")
        lines.append(f"Paired two-sided t-test over per-query values at alpha = {self.alpha:g}"
                     + (f", Holm-corrected across the {len(self.rows)} comparisons" if len(self.rows) > 1 else "")
                     + "; d_z = mean difference / sd of the differences.")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"a": str(self.a.dir), "b": str(self.b.dir), "alpha": self.alpha,
                           "comparisons": [{"dataset": r.dataset, "measure": r.measure, **asdict(r.test),
                                            "p_holm": r.p_holm, "verdict": r.verdict} for r in self.rows]},
                          sort_keys=True, default=lambda x: None)


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def compare_runs(a: RunResult, b: RunResult, measures: "list[str] | None" = None,
                 datasets: "list[str] | None" = None, alpha: float = DEFAULT_ALPHA) -> CompareReport:
    """Every (dataset, measure) both runs have (or those asked for), A against B."""
    if not 0 < alpha < 1:
        raise ReportInputError(f"--alpha: expected a number between 0 and 1, got {alpha}")
    common = [ds for ds in a.datasets if ds in b.results]
    if datasets:
        missing = [d for d in datasets if d not in common]
        if missing:
            raise ReportInputError(f"--datasets: {', '.join(missing)} not evaluated by both runs "
                                   f"(both have: {', '.join(common) or 'none'})")
        common = list(datasets)
    if not common:
        raise ReportInputError(f"{a.dir} and {b.dir} evaluated no dataset in common "
                               f"({', '.join(a.datasets)} vs {', '.join(b.datasets)})")
    tests: list[tuple[str, str, PairedComparison]] = []
    for ds in common:
        pa, pb = a.per_query(ds), b.per_query(ds)
        for run, pq in ((a, pa), (b, pb)):
            if pq is None:
                raise ReportInputError(f"{run.dir}: no per-query values for {ds} (the file "
                                       f"{run.payload.get('files', {}).get(ds, {}).get('per_query')} is not there)")
        both = [m for m in a.results[ds] if m in b.results[ds]]
        if measures:
            missing = [m for m in measures if m not in both]
            if missing:
                raise ReportInputError(f"--measures: {', '.join(missing)} not evaluated by both runs on {ds} "
                                       f"(both have: {', '.join(both)})")
            both = list(measures)
        queries = [q for q in pa if q in pb]
        if len(queries) < 2:
            raise ReportInputError(f"{ds}: the runs share {len(queries)} queries; a paired test needs two or more")
        for m in both:
            qs = [q for q in queries if m in pa[q] and m in pb[q]]
            tests.append((ds, m, paired_comparison([pa[q][m] for q in qs], [pb[q][m] for q in qs], alpha)))
    adjusted = holm([t.p for _, _, t in tests])
    rows = [Row(ds, m, t, float(p)) for (ds, m, t), p in zip(tests, adjusted)]
    return CompareReport(a=a, b=b, rows=rows, alpha=alpha)
