"""The Pareto figure: every configuration at its means on two quantities, each with its own
direction, the frontier (harness/report/frontier.py) joined and labelled, and the base model's
quality as a dotted line (the site's figure draws it the same way)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from harness.report.callouts import frontier_callouts
from harness.report.figures import (SINGLE, add_legend, crowded, error_bar_note, model_markers, plot_configs, plot_crowd,
                                    set_axis, styled)
from harness.report.frontier import frontier, on_axis, pareto_mask
from harness.report.labels import BASE_METHOD
from harness.report.stats import CONFIDENCE

__all__ = ["frontier", "pareto_figure", "pareto_mask"]


@styled
def pareto_figure(summary: pd.DataFrame, x: str, y: str, higher_is_better: dict[str, bool], colors: dict[str, tuple],
                  title: str, confidence: float = CONFIDENCE) -> Figure:
    """Every configuration at its means, the frontier joined by a dashed line and its points
    labelled. Up to MAX_LABELLED_CONFIGS configurations each has error bars and a legend entry;
    more (figures.crowded) are small unlabelled points coloured by method, and only the frontier's
    have error bars."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.add_subplot()
    base = summary[summary["method"] == BASE_METHOD]
    summary = on_axis(summary, x)
    for _, row in base.iterrows():
        ax.axhline(row[f"{y}_mean"], linestyle=":", color="0.1", linewidth=1, zorder=1,
                   label=f"base model ({row['label']})" if len(base) > 1 else "base model")
    front = frontier(summary, x, y, higher_is_better)
    if crowded(summary):
        plot_crowd(ax, summary, x, y, colors)
        plot_configs(ax, front, x, y, colors, labelled=False, markers=model_markers(summary))
    else:
        plot_configs(ax, summary, x, y, colors)
    ax.plot(front[f"{x}_mean"], front[f"{y}_mean"], "--", color="0.35", linewidth=1.2, zorder=1, label="Pareto frontier")
    set_axis(ax, "x", x, higher_is_better[x])
    set_axis(ax, "y", y, higher_is_better[y])
    fig.suptitle(title)
    callouts = frontier_callouts(front, x, y)
    notes = [error_bar_note(confidence), *([f"{len(summary)} configurations, coloured by method; labelled: the frontier"]
                                           if crowded(summary) else []), *([callouts.note] if callouts.note else [])]
    add_legend(fig, "\n".join(notes))
    callouts.draw(fig, ax)
    return fig
