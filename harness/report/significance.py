"""Is a difference real? Paired two-sided t-tests over per-query values, Holm-corrected across a table.

For every (recipe, dataset, measure) cell other than the baseline's, the run's per-query values are paired
with the baseline's on the queries both evaluated (the same judged queries when the dataset ids match) and
tested with ``scipy.stats.ttest_rel`` (two-sided). All the p-values of one table are one family: Holm's
step-down correction keeps the chance of any false "significant" mark in the table at or below alpha.

Edge cases: identical per-query values give p = 1 (scipy says NaN; there is no difference at all); the same
nonzero difference on every query gives t = ±inf, p = 0 (as scipy, without its precision-loss warning);
fewer than two paired queries, or no per-query file, give no test (NaN, never marked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from harness.report.results import RunResult

DEFAULT_ALPHA = 0.05


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(t, two-sided p) of the paired t-test of ``a`` against ``b`` (same length, same query order)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    if x.size < 2:
        return math.nan, math.nan
    d = x - y
    if np.all(d == 0):
        return 0.0, 1.0
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # the same nonzero difference on every query
        return math.copysign(math.inf, float(d.mean())), 0.0  # (what scipy gives, without its precision warning)
    res = stats.ttest_rel(x, y)
    return float(res.statistic), float(res.pvalue)


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (per-query scores), resampling
    queries with replacement (``scipy.stats.bootstrap``, seeded: the same values give the same interval).
    A single value, or values that are all equal, give the degenerate interval (v, v)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass
class PairedComparison:
    """A against B over the queries both evaluated: what ``harness compare`` prints."""

    n: int
    mean_a: float
    mean_b: float
    delta: float  # mean of a - b
    t: float
    p: float
    effect_size: float  # Cohen's d_z: mean difference / standard deviation of the differences
    ci_low: float  # confidence interval of the mean difference (t distribution)
    ci_high: float
    alpha: float

    @property
    def verdict(self) -> str:
        """"A better", "B better" or "indistinguishable" (two-sided paired t-test at ``alpha``)."""
        if math.isnan(self.p) or self.p >= self.alpha or self.delta == 0:
            return "indistinguishable"
        return "A better" if self.delta > 0 else "B better"


def paired_comparison(a: Sequence[float], b: Sequence[float], alpha: float = DEFAULT_ALPHA) -> PairedComparison:
    """Paired t-test of ``a`` against ``b`` (same query order), effect size and the (1 - alpha) confidence
    interval of the mean difference, mean ± t(1 - alpha/2, n - 1) · sd / sqrt(n)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    t, p = paired_ttest(x, y)
    d = x - y
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and sd > 0:
        half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
        effect = mean / sd
    else:  # no spread: the difference is the same on every query (or there is one query)
        half = 0.0 if n > 1 else math.nan
        effect = 0.0 if mean == 0 else math.copysign(math.inf, mean) if n > 1 else math.nan
    return PairedComparison(n=n, mean_a=float(x.mean()) if n else math.nan, mean_b=float(y.mean()) if n else math.nan,
                            delta=mean, t=t, p=p, effect_size=effect, ci_low=mean - half, ci_high=mean + half,
                            alpha=alpha)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given; NaN stays NaN and is not counted).

    Sorted ascending, the i-th smallest of m p-values becomes max over j <= i of min(1, (m - j) * p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def compare(runs: list[RunResult], baseline: RunResult, measures: "list[str] | None" = None,
            datasets: "list[str] | None" = None, alpha: float = DEFAULT_ALPHA):
    """One row per (recipe, dataset, measure) of every non-baseline run: value, delta vs the baseline,
    t, p, Holm-adjusted p over all rows, and ``significant`` (p_holm < alpha)."""
    import pandas as pd

    rows = []
    for r in runs:
        if r is baseline:
            continue
        for ds in datasets or r.datasets:
            if ds not in r.results:
                continue
            for m in measures or list(r.results[ds]):
                if m not in r.results[ds]:
                    continue
                value = float(r.results[ds][m])
                base = baseline.results.get(ds, {}).get(m)
                row = {"recipe": r.label, "dataset": ds, "measure": m, "value": value,
                       "baseline": math.nan if base is None else float(base),
                       # rounded: equal means must show +0.0000, not the float noise -1e-16
                       "delta": math.nan if base is None else round(value - float(base), 12) + 0.0,
                       "n": 0, "t": math.nan, "p": math.nan}
                if base is not None:
                    mine, theirs = r.per_query(ds), baseline.per_query(ds)
                    if mine is not None and theirs is not None:
                        common = [q for q in mine if q in theirs and m in mine[q] and m in theirs[q]]
                        row["n"] = len(common)
                        row["t"], row["p"] = paired_ttest([mine[q][m] for q in common],
                                                          [theirs[q][m] for q in common])
                rows.append(row)
    frame = pd.DataFrame(rows, columns=["recipe", "dataset", "measure", "value", "baseline", "delta", "n", "t", "p"])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    frame["significant"] = (frame["p_holm"] < alpha).fillna(False).astype(bool) if len(frame) else []
    return frame
