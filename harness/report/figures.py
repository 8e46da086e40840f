"""The report's look and its figures as matplotlib Figure objects, never pyplot state: the command
saves them headless, notebooks display them. Every figure: readable fonts, units on the axes, a
legend, error bars of the configuration's interval across seeds."""

from __future__ import annotations

from collections.abc import Iterable
from functools import wraps
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.report.labels import LOG_SCALE, directed_label, label
from harness.report.stats import CONFIDENCE, t_interval

STYLE = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9, "legend.title_fontsize": 9,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text, editable and searchable
}
MARKERS = "osD^vP*X<>"
SINGLE = (7.0, 5.0)  # inches: one axes; the legend adds its rows below
LEGEND_COLUMNS = 3
LEGEND_ROW_INCHES = 0.25


def styled(build):
    """Create (and save) figures under STYLE without touching the caller's matplotlib settings."""
    @wraps(build)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return build(*args, **kwargs)
    return wrapper


def config_colors(configs: Iterable[str]) -> dict[str, tuple]:
    """One colour per configuration, fixed for the whole report so a method looks the same everywhere."""
    names = sorted(set(configs))
    cmap = mpl.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


@styled
def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png (200 dpi) and `stem`.pdf; returns both paths."""
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=200, bbox_inches="tight")
    return paths


def set_axis(ax: Axes, axis: str, name: str, higher_is_better: bool) -> None:
    getattr(ax, f"set_{axis}label")(directed_label(name, higher_is_better))
    if name in LOG_SCALE:
        getattr(ax, f"set_{axis}scale")("log")
    else:  # plain tick values: an offset ("+1.075e1") hides the numbers a reader compares
        getattr(ax, f"{axis}axis").get_major_formatter().set_useOffset(False)


def _error_bars(row: pd.Series, quantity: str) -> np.ndarray:
    """Lengths below and above the mean; none where there is no interval (one seed)."""
    mean = row[f"{quantity}_mean"]
    below, above = mean - row[f"{quantity}_low"], row[f"{quantity}_high"] - mean
    return np.array([[0.0 if np.isnan(below) else below], [0.0 if np.isnan(above) else above]])


def plot_configs(ax: Axes, summary: pd.DataFrame, x: str, y: str, colors: dict[str, tuple]) -> None:
    """One point per configuration (a config summary row) at its means, error bars of its intervals
    on both axes, colour per config, marker per model, legend label from the `label` column."""
    markers = {model: MARKERS[i % len(MARKERS)] for i, model in enumerate(sorted(summary["model"].unique()))}
    for _, row in summary.dropna(subset=[f"{x}_mean", f"{y}_mean"]).iterrows():
        ax.errorbar(row[f"{x}_mean"], row[f"{y}_mean"], xerr=_error_bars(row, x), yerr=_error_bars(row, y),
                    fmt=markers[row["model"]], color=colors[row["config"]], markersize=7, capsize=3,
                    elinewidth=1.2, label=row["label"], zorder=3)


def error_bar_note(confidence: float) -> str:
    return f"error bars: {confidence:.0%} CI over seeds"


def add_legend(fig: Figure, title: str) -> None:
    """One legend for the whole figure, below the axes (room for many configurations without
    crowding the title), entries deduplicated by label; the figure grows by its rows."""
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    columns = min(LEGEND_COLUMNS, len(entries))
    rows = -(-len(entries) // columns) + title.count("\n") + 1
    fig.set_figheight(fig.get_figheight() + rows * LEGEND_ROW_INCHES)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=columns, title=title)


@styled
def learning_forgetting_figure(runs: pd.DataFrame, summary: pd.DataFrame, learning: str, forgetting: str,
                               higher_is_better: dict[str, bool], colors: dict[str, tuple], title: str,
                               confidence: float = CONFIDENCE) -> Figure:
    """Forgetting (x) against the task metric (y): every run as a faint dot, every configuration at
    its means with error bars."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.add_subplot()
    for config, rows in runs.groupby("config"):
        ax.scatter(rows[forgetting], rows[learning], color=colors[config], alpha=0.35, s=22, linewidths=0, zorder=2)
    plot_configs(ax, summary, forgetting, learning, colors)
    set_axis(ax, "x", forgetting, higher_is_better[forgetting])
    set_axis(ax, "y", learning, higher_is_better[learning])
    fig.suptitle(title)
    add_legend(fig, f"{error_bar_note(confidence)}\nfaint dots: single runs")
    return fig


@styled
def loss_curve_figure(curves: pd.DataFrame, colors: dict[str, tuple], title: str, confidence: float = CONFIDENCE) -> Figure:
    """Training loss per optimizer step, one panel per model x budget, one line per configuration:
    the mean over seeds with a band of its interval."""
    panels = sorted(curves.groupby(["model", "budget"]).groups)
    fig = Figure(figsize=(max(SINGLE[0], 5.0 * len(panels)), 4.2), layout="constrained")
    for ax, (model, budget) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        panel = curves[(curves["model"] == model) & (curves["budget"] == budget)]
        for config, rows in panel.groupby("config", sort=True):
            by_step = [(step, t_interval(values, confidence)) for step, values in rows.groupby("step")["value"]]
            steps = np.array([step for step, _ in by_step])
            mean, low, high = (np.array([getattr(i, stat) for _, i in by_step]) for stat in ("mean", "low", "high"))
            ax.plot(steps, mean, color=colors[config], marker="o" if len(steps) <= 25 else None, markersize=4,
                    label=f"{config} ({rows['seed'].nunique()} seeds)")
            ax.fill_between(steps, low, high, color=colors[config], alpha=0.2, linewidth=0)
        ax.set_title(f"{model}, budget {budget}")
        ax.set_xlabel("Optimizer step")
        ax.set_ylabel(label("train_loss"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    add_legend(fig, f"line: mean over seeds\nband: {confidence:.0%} CI over seeds")
    return fig
