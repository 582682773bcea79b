"""Plots for comparisons and leaderboards, with matplotlib's Agg backend (no display needed), as PNG and SVG.

* :func:`efficiency_effectiveness`: query latency p50 (x) against an effectiveness measure (y, nDCG@10 by
  default), one point per recipe, and the Pareto frontier (no other recipe is both faster and better)
  drawn as a staircase. A recipe without a measured latency (BM25: its batch search time is no per-query
  latency) is drawn as a dashed horizontal reference line at its score instead of a made-up point.
* :func:`training_curves`: loss per step from each trained student's ``train_log.jsonl`` (raw, and a
  moving average once there are enough steps).

Each writes ``<stem>.png`` and ``<stem>.svg`` atomically and returns their paths; the SVG is
deterministic (fixed hash salt, no date), so regenerated leaderboards diff cleanly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.report.files import atomic_write_with
from harness.report.results import RunResult

FORMATS = ("png", "svg")


@dataclass
class Point:
    label: str
    latency_ms: "float | None"
    value: float


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "distill-harness"
    plt.rcParams["svg.fonttype"] = "path"
    return plt


def _save(fig, stem: Path) -> list[Path]:
    out = []
    for fmt in FORMATS:
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        out.append(atomic_write_with(stem.with_suffix(f".{fmt}"), lambda tmp, fmt=fmt, md=metadata: fig.savefig(
            tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=md)))
    return out


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def pareto_frontier(points: Iterable[Point]) -> list[Point]:
    """The points no other point beats on both axes (lower latency and higher value), by latency."""
    timed = sorted((p for p in points if p.latency_ms is not None), key=lambda p: (p.latency_ms, -p.value))
    frontier: list[Point] = []
    for p in timed:
        if not frontier or p.value > frontier[-1].value:
            frontier.append(p)
    return frontier


def efficiency_effectiveness(points: list[Point], stem: Path, measure: str = "nDCG@10",
                             title: str = "") -> list[Path]:
    """One point per recipe at (latency p50, measure); the Pareto frontier as a red staircase."""
    plt = _pyplot()
    timed = [p for p in points if p.latency_ms is not None]
    untimed = [p for p in points if p.latency_ms is None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    try:
        frontier = pareto_frontier(timed)
        if timed:
            lats = [p.latency_ms for p in timed]
            if min(lats) > 0 and max(lats) / min(lats) > 20:
                ax.set_xscale("log")
            on_front = {id(p) for p in frontier}
            ax.scatter([p.latency_ms for p in timed if id(p) not in on_front],
                       [p.value for p in timed if id(p) not in on_front], color="#8c8c8c", zorder=3,
                       label="recipe")
            ax.scatter([p.latency_ms for p in frontier], [p.value for p in frontier], color="#d62728", zorder=4,
                       label="Pareto frontier")
            xs = [p.latency_ms for p in frontier]
            ys = [p.value for p in frontier]
            xmax = max(lats) * (1.5 if ax.get_xscale() == "log" else 1.05)
            ax.step(xs + [xmax], ys + [ys[-1]], where="post", color="#d62728", linewidth=1.2, zorder=2)
            for p in timed:
                ax.annotate(p.label, (p.latency_ms, p.value), textcoords="offset points", xytext=(5, 4),
                            fontsize=8)
        else:
            ax.text(0.5, 0.5, "no recipe measured query latency", transform=ax.transAxes, ha="center",
                    color="#8c8c8c")
        for i, p in enumerate(untimed):
            ax.axhline(p.value, linestyle="--", linewidth=1, color=f"C{i % 10}",
                       label=f"{p.label} (latency not measured)")
        ax.set_xlabel("query latency p50 (ms, lower is better)")
        ax.set_ylabel(f"{measure} (higher is better)")
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        return _save(fig, Path(stem))
    finally:
        plt.close(fig)


def _moving_average(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def training_curves(curves: dict[str, list[tuple[float, float]]], stem: Path, title: str = "",
                    subtitles: "dict[str, str] | None" = None) -> list[Path]:
    """``curves``: {recipe: [(step, loss), ...]}: one panel per recipe, each with its own y axis (losses
    of different recipes are different functions and share no scale)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    n = max(1, len(curves))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    try:
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        if not curves:
            axes[0][0].text(0.5, 0.5, "no training logs", transform=axes[0][0].transAxes, ha="center")
        for i, (ax, (label, pts)) in enumerate(zip(axes.flat, curves.items())):
            steps = [s for s, _ in pts]
            losses = [v for _, v in pts]
            color = f"C{i % 10}"
            window = max(1, len(losses) // 20)
            if window > 1:
                ax.plot(steps, losses, color=color, alpha=0.3, linewidth=0.8, label="per step")
                ax.plot(steps, _moving_average(losses, window), color=color, linewidth=1.5,
                        label=f"mean of {window} steps")
                ax.legend(fontsize=6, loc="best")
            else:
                ax.plot(steps, losses, color=color, linewidth=1.5, marker="o" if len(steps) < 20 else None,
                        markersize=3)
            if losses and min(losses) > 0 and max(losses) / min(losses) > 50:
                ax.set_yscale("log")
            sub = (subtitles or {}).get(label)
            ax.set_title(label + (f"\n{sub}" if sub else ""), fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=7)
            ax.set_xlabel("step", fontsize=7)
            ax.set_ylabel("loss", fontsize=7)
            ax.grid(True, alpha=0.3)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return _save(fig, Path(stem))
    finally:
        plt.close(fig)


# ---- from runs ---------------------------------------------------------------------------------------

def points_for(runs: list[RunResult], dataset: str, measure: str = "nDCG@10") -> list[Point]:
    out = []
    for r in runs:
        v = r.results.get(dataset, {}).get(measure)
        if v is None:
            continue
        lat = r.efficiency(dataset).get("latency_ms_p50")
        out.append(Point(r.label, None if lat is None or math.isnan(lat) else float(lat), float(v)))
    return out


def plots_for_runs(runs: list[RunResult], out_dir: Path, measure: str = "nDCG@10",
                   datasets: "list[str] | None" = None) -> dict[str, list[Path]]:
    """Every plot the runs allow: {"latency vs <measure>: <dataset>": [png, svg], "training loss": [png, svg]}."""
    out: dict[str, list[Path]] = {}
    datasets = datasets or list(dict.fromkeys(ds for r in runs for ds in r.datasets))
    for ds in datasets:
        pts = points_for(runs, ds, measure)
        if any(p.latency_ms is not None for p in pts):
            out[f"latency vs {measure}: {ds}"] = efficiency_effectiveness(
                pts, Path(out_dir) / f"efficiency-{slug(ds)}", measure, title=f"{ds}: latency vs {measure}")
    curves, subtitles = {}, {}
    for r in runs:
        log = r.train_log()
        if log:
            pts = [(float(row["step"]), float(row["loss"])) for row in log
                   if isinstance(row.get("step"), (int, float)) and isinstance(row.get("loss"), (int, float))]
            if pts:
                curves[r.label] = pts
                loss = r.training.get("loss")
                subtitles[r.label] = f"loss: {loss}" if loss else ""
    if curves:
        out["training loss"] = training_curves(curves, Path(out_dir) / "training-loss", title="training loss",
                                               subtitles=subtitles)
    return out
