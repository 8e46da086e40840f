"""Pareto frontiers: the configurations that no other configuration beats on both of two
quantities, each with its own direction (higher accuracy is better, lower memory is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.figures import SINGLE, add_legend, error_bar_note, plot_configs, set_axis, styled
from harness.report.stats import CONFIDENCE


def pareto_mask(x: Sequence[float], y: Sequence[float], x_higher_is_better: bool, y_higher_is_better: bool) -> np.ndarray:
    """True for every point that no other point dominates (at least as good on both axes and
    strictly better on one). Points with a missing coordinate are never on the frontier."""
    gx = np.asarray(x, dtype=float) * (1.0 if x_higher_is_better else -1.0)  # oriented: larger is better
    gy = np.asarray(y, dtype=float) * (1.0 if y_higher_is_better else -1.0)
    finite = np.isfinite(gx) & np.isfinite(gy)
    # [i, j]: point j is at least as good as point i on both axes, and better on one
    at_least = (gx[None, :] >= gx[:, None]) & (gy[None, :] >= gy[:, None])
    better = (gx[None, :] > gx[:, None]) | (gy[None, :] > gy[:, None])
    dominated = (at_least & better & finite[None, :]).any(axis=1)
    return finite & ~dominated


def frontier(summary: pd.DataFrame, x: str, y: str, higher_is_better: dict[str, bool]) -> pd.DataFrame:
    """The config-summary rows on the frontier of the means of `x` and `y`, ordered along x."""
    mask = pareto_mask(summary[f"{x}_mean"], summary[f"{y}_mean"], higher_is_better[x], higher_is_better[y])
    return summary[mask].sort_values([f"{x}_mean", f"{y}_mean"])


@styled
def pareto_figure(summary: pd.DataFrame, x: str, y: str, higher_is_better: dict[str, bool], colors: dict[str, tuple],
                  title: str, confidence: float = CONFIDENCE) -> Figure:
    """Every configuration at its means with error bars; the frontier joined by a dashed line and
    its points labelled (coincident points share one label)."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.add_subplot()
    plot_configs(ax, summary, x, y, colors)
    front = frontier(summary, x, y, higher_is_better)
    ax.plot(front[f"{x}_mean"], front[f"{y}_mean"], "--", color="0.35", linewidth=1.2, zorder=1, label="Pareto frontier")
    for (px, py), rows in front.groupby([f"{x}_mean", f"{y}_mean"], sort=False):
        ax.annotate("\n".join(rows["label"]), (px, py), xytext=(6, 6), textcoords="offset points", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    set_axis(ax, "x", x, higher_is_better[x])
    set_axis(ax, "y", y, higher_is_better[y])
    fig.suptitle(title)
    add_legend(fig, error_bar_note(confidence))
    return fig
