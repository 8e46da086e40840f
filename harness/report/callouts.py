"""Point labels that never overlap, however many points crowd together: a column of callouts right
of the axes, each as near its point's height as the others allow and joined to its point by a thin
line. Labels next to their points collide as soon as two points are close (a Pareto frontier often
runs along one edge); a column cannot, and the figure grows taller when the column needs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MAX_LABELS = 20  # callouts in one figure at most: more would make a column taller than a page
FONT_SIZE = 9
LINE_POINTS = FONT_SIZE * 1.25  # one line of text with its leading
GAP_POINTS = 3.0  # between two callouts
COLUMN_X = 1.03  # axes fraction: just right of the axes


def stack(desired: Sequence[float], heights: Sequence[float], low: float = 0.0, high: float = 1.0) -> list[float]:
    """Centres of boxes of `heights`, each as near its `desired` centre as the others allow, in the
    same order, never overlapping; within [low, high] when they fit in it. A top-down sweep keeps
    each box below the one above it, a bottom-up sweep then lifts what fell below `low` (and every
    box that lift reaches), so no two boxes ever overlap."""
    order = sorted(range(len(desired)), key=lambda i: -desired[i])
    centres = [0.0] * len(desired)
    top = high
    for i in order:
        centres[i] = min(desired[i], top - heights[i] / 2)
        top = centres[i] - heights[i] / 2
    bottom = low
    for i in reversed(order):
        centres[i] = max(centres[i], bottom + heights[i] / 2)
        bottom = centres[i] + heights[i] / 2
    return centres


def callout_labels(fig: Figure, ax: Axes, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str]) -> None:
    """Label the points (xs, ys) of `ax` with `texts` (a text may hold several lines) in a column
    right of the axes. Call it last: it lays the figure out to learn the axes' height."""
    if not texts:
        return
    widest = max(len(line) for text in texts for line in text.split("\n")) * FONT_SIZE * 0.6  # points, about
    fig.set_figwidth(fig.get_figwidth() + widest / 72)  # the column's room, so the axes keep their width
    height = _axes_height(fig, ax)
    boxes = np.array([(text.count("\n") + 1) * LINE_POINTS + GAP_POINTS for text in texts])
    if boxes.sum() > height:  # the column is taller than the axes: make the figure taller
        fig.set_figheight(fig.get_figheight() + (boxes.sum() - height) / 72 + 0.2)
        height = _axes_height(fig, ax)
    to_axes = ax.transData + ax.transAxes.inverted()  # data -> axes fraction, whatever the axes' size
    desired = np.clip(to_axes.transform(np.column_stack([xs, ys]))[:, 1], 0.0, 1.0)
    for x, y, text, centre in zip(xs, ys, texts, stack(list(desired), list(boxes / height))):
        # The line runs to the text's anchor, under its white box: not clipped to the box, which is
        # costly to compute for every callout of every figure.
        ax.annotate(text, xy=(x, y), xytext=(COLUMN_X, centre), textcoords="axes fraction", ha="left", va="center",
                    fontsize=FONT_SIZE, annotation_clip=False,
                    bbox={"boxstyle": "square,pad=0.2", "facecolor": "white", "edgecolor": "none"},
                    arrowprops={"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "patchA": None,
                                "shrinkA": 0, "shrinkB": 3})


def _axes_height(fig: Figure, ax: Axes) -> float:
    """The axes' height in points once the figure is laid out as it will be saved (the layout
    engine alone, without drawing: half the time)."""
    engine = fig.get_layout_engine()
    if engine is None:
        fig.draw_without_rendering()
    else:
        engine.execute(fig)
    return ax.get_position().height * fig.get_figheight() * 72


@dataclass(frozen=True)
class Callouts:
    """Points to label and their texts; `note` says what was left out (empty when nothing was)."""

    xs: list[float]
    ys: list[float]
    texts: list[str]
    note: str

    def draw(self, fig: Figure, ax: Axes) -> None:
        callout_labels(fig, ax, self.xs, self.ys, self.texts)


def frontier_callouts(front: pd.DataFrame, x: str, y: str) -> Callouts:
    """The `label` of each frontier row (harness/report/frontier.py, ordered along x) at its means of
    x and y; coincident points share one callout. A frontier of more than MAX_LABELS points gets
    MAX_LABELS callouts spread evenly along it, both ends included."""
    groups = list(front.groupby([f"{x}_mean", f"{y}_mean"], sort=False))
    note = ""
    if len(groups) > MAX_LABELS:
        picked = np.unique(np.linspace(0, len(groups) - 1, MAX_LABELS).round().astype(int))
        note = f"labelled: {len(picked)} of the {len(groups)} frontier points, evenly along it"
        groups = [groups[i] for i in picked]
    return Callouts([px for (px, _), _ in groups], [py for (_, py), _ in groups],
                    ["\n".join(rows["label"]) for _, rows in groups], note)
