"""Pareto frontiers: the configurations that no other configuration beats on both of two
quantities, each with its own direction (higher accuracy is better, lower memory is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.report.labels import LOG_SCALE


def pareto_mask(x: Sequence[float], y: Sequence[float], x_higher_is_better: bool, y_higher_is_better: bool) -> np.ndarray:
    """True for every point that no other point dominates (at least as good on both axes and
    strictly better on one). Points with a missing coordinate are never on the frontier.

    Sorted by x (best first, ties broken by y, best first), a point is dominated exactly when some
    point before it is at least as good on y and is not its exact duplicate: one pass over the
    running best y, O(n log n) instead of comparing every pair (10,000 configurations: 10^8 pairs)."""
    gx = np.asarray(x, dtype=float) * (1.0 if x_higher_is_better else -1.0)  # oriented: larger is better
    gy = np.asarray(y, dtype=float) * (1.0 if y_higher_is_better else -1.0)
    finite = np.isfinite(gx) & np.isfinite(gy)
    mask = np.zeros(len(gx), dtype=bool)
    best_y, best_x = -np.inf, np.nan  # the best y so far, and the x of a point that has it
    for i in sorted(np.flatnonzero(finite), key=lambda i: (-gx[i], -gy[i])):
        if gy[i] > best_y or (gy[i] == best_y and gx[i] == best_x):  # better, or a duplicate of a frontier point
            mask[i] = True
            best_y, best_x = gy[i], gx[i]
    return mask


def frontier(summary: pd.DataFrame, x: str, y: str, higher_is_better: dict[str, bool]) -> pd.DataFrame:
    """The config-summary rows on the frontier of the means of `x` and `y`, ordered along x."""
    mask = pareto_mask(summary[f"{x}_mean"], summary[f"{y}_mean"], higher_is_better[x], higher_is_better[y])
    return summary[mask].sort_values([f"{x}_mean", f"{y}_mean"])


def on_axis(summary: pd.DataFrame, x: str) -> pd.DataFrame:
    """The rows a figure can place on its x axis: every row, but on a log axis (labels.LOG_SCALE) only
    those with a positive x (the base model's 0 trainable parameters have no position there, so it is
    neither a mark nor a frontier point; its quality line stands in for it)."""
    return summary[summary[f"{x}_mean"] > 0] if x in LOG_SCALE else summary
