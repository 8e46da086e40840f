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
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.report.labels import LOG_SCALE, directed_label, label
from harness.report.callouts import MAX_LABELS, frontier_callouts
from harness.report.frontier import frontier
from harness.report.stats import CONFIDENCE, t_bounds

STYLE = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9, "legend.title_fontsize": 9,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text, editable and searchable
}
MARKERS = "osD^vP*X<>"
SINGLE = (7.0, 5.0)  # inches: one axes; the legend adds its rows below
LEGEND_COLUMNS = 3
LEGEND_ROW_INCHES = 0.25
# More configurations than this in one figure and it is crowded: its points are not labelled one by
# one (a legend of hundreds of entries is unreadable) but coloured by method, and only what the
# figure is about (a Pareto frontier) is labelled, in callouts that never overlap (callouts.py).
MAX_LABELLED_CONFIGS = MAX_LABELS


def styled(build):
    """Create (and save) figures under STYLE without touching the caller's matplotlib settings."""
    @wraps(build)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return build(*args, **kwargs)
    return wrapper


def config_colors(configs: Iterable[str]) -> dict[str, tuple]:
    """One colour per configuration, fixed for the whole report so a method looks the same
    everywhere; with more than MAX_LABELLED_CONFIGS configurations, one colour per method."""
    names = sorted(set(configs))
    if len(names) <= MAX_LABELLED_CONFIGS:
        return dict(zip(names, _palette(len(names))))
    methods = sorted({method_of(name) for name in names})
    by_method = dict(zip(methods, _palette(len(methods))))
    return {name: by_method[method_of(name)] for name in names}


def _palette(n: int) -> list[tuple]:
    """n colours, distinct up to 60 (tab10, or tab20 then tab20b and tab20c), then repeating."""
    if n <= 10:
        return [mpl.colormaps["tab10"](i) for i in range(n)]
    colors = [c for name in ("tab20", "tab20b", "tab20c") for c in mpl.colormaps[name].colors]
    return [colors[i % len(colors)] for i in range(n)]


def method_of(config: str) -> str:
    """The method of a configuration name: `lora` of `lora [train.lr=0.001]` (harness/report/load.py)."""
    return config.split(" [", 1)[0]


def crowded(summary: pd.DataFrame) -> bool:
    return len(summary) > MAX_LABELLED_CONFIGS


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


def model_markers(summary: pd.DataFrame) -> dict[str, str]:
    return {model: MARKERS[i % len(MARKERS)] for i, model in enumerate(sorted(summary["model"].unique()))}


def plot_configs(ax: Axes, summary: pd.DataFrame, x: str, y: str, colors: dict[str, tuple], labelled: bool = True,
                 markers: dict[str, str] | None = None) -> None:
    """One point per configuration (a config summary row) at its means, error bars of its intervals
    on both axes, colour per config, marker per model, legend label from the `label` column
    (none when not `labelled`)."""
    markers = markers or model_markers(summary)
    for _, row in summary.dropna(subset=[f"{x}_mean", f"{y}_mean"]).iterrows():
        ax.errorbar(row[f"{x}_mean"], row[f"{y}_mean"], xerr=_error_bars(row, x), yerr=_error_bars(row, y),
                    fmt=markers[row["model"]], color=colors[row["config"]], markersize=7, capsize=3,
                    elinewidth=1.2, label=row["label"] if labelled else None, zorder=3)


def plot_crowd(ax: Axes, summary: pd.DataFrame, x: str, y: str, colors: dict[str, tuple]) -> None:
    """A crowded figure's configurations: a small unlabelled point each at its means (one scatter
    per method and model), and legend entries per method and per model instead of per configuration."""
    markers = model_markers(summary)
    shown = summary.dropna(subset=[f"{x}_mean", f"{y}_mean"])
    for (color, model), rows in shown.groupby([color_keys(shown["config"], colors), "model"], sort=True):
        ax.scatter(rows[f"{x}_mean"], rows[f"{y}_mean"], color=color, marker=markers[model], s=16, alpha=0.7,
                   linewidths=0, zorder=2)
    crowd_legend(ax, summary["config"], markers if len(markers) > 1 else {}, colors)


def color_keys(configs: pd.Series, colors: dict[str, tuple]) -> pd.Series:
    """Each configuration's colour as text (`#1f77b4ff`), to draw the points of one colour in one
    call: a scatter of one colour saves as PDF three times faster than one with a colour per point."""
    hexes = {c: to_hex(colors[c], keep_alpha=True) for c in configs.unique()}
    return configs.map(hexes)


def crowd_legend(ax: Axes, configs: Iterable[str], markers: dict[str, str], colors: dict[str, tuple]) -> None:
    """Legend entries of a crowded figure: a colour per method, a marker per model (when several)."""
    firsts = {method_of(c): c for c in sorted(set(configs), reverse=True)}
    for method in sorted(firsts):
        ax.scatter([], [], color=colors[firsts[method]], marker="o", s=30, label=method)
    for model, marker in markers.items():
        ax.scatter([], [], color="0.4", marker=marker, s=30, label=model)


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
    its means with error bars. A crowded figure (more than MAX_LABELLED_CONFIGS configurations)
    labels only the configurations no other beats on both, with error bars, in callouts."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.add_subplot()
    for color, rows in runs.groupby(color_keys(runs["config"], colors), sort=True):
        ax.scatter(rows[forgetting], rows[learning], color=color, alpha=0.35, s=22, linewidths=0, zorder=2)
    front = frontier(summary, forgetting, learning, higher_is_better)
    if crowded(summary):
        plot_crowd(ax, summary, forgetting, learning, colors)
        plot_configs(ax, front, forgetting, learning, colors, labelled=False, markers=model_markers(summary))
    else:
        plot_configs(ax, summary, forgetting, learning, colors)
    set_axis(ax, "x", forgetting, higher_is_better[forgetting])
    set_axis(ax, "y", learning, higher_is_better[learning])
    fig.suptitle(title)
    if not crowded(summary):
        add_legend(fig, f"{error_bar_note(confidence)}\nfaint dots: single runs")
        return fig
    callouts = frontier_callouts(front, forgetting, learning)
    add_legend(fig, f"{error_bar_note(confidence)}\nfaint dots: single runs; {len(summary)} configurations, coloured "
                    f"by method\nlabelled: those no other beats on both{'; ' + callouts.note if callouts.note else ''}")
    callouts.draw(fig, ax)
    return fig


@styled
def loss_curve_figure(curves: pd.DataFrame, colors: dict[str, tuple], title: str, confidence: float = CONFIDENCE) -> Figure:
    """Training loss per optimizer step, one panel per model x budget, one line per configuration:
    the mean over seeds with a band of its interval. A panel of more than MAX_LABELLED_CONFIGS
    configurations draws thin unlabelled lines coloured by method, without bands."""
    panels = sorted(curves.groupby(["model", "budget"]).groups)
    fig = Figure(figsize=(max(SINGLE[0], 5.0 * len(panels)), 4.2), layout="constrained")
    notes = f"line: mean over seeds\nband: {confidence:.0%} CI over seeds"
    for ax, (model, budget) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        panel = curves[(curves["model"] == model) & (curves["budget"] == budget)]
        by_step = _step_intervals(panel, confidence)
        crowd = panel["config"].nunique() > MAX_LABELLED_CONFIGS
        seeds = panel.groupby("config")["seed"].nunique()
        lines = []  # a crowded panel's (config, points): one collection draws them all
        for config, rows in by_step.groupby(level="config", sort=True):
            steps, mean = rows.index.get_level_values("step").to_numpy(), rows["mean"].to_numpy()
            if crowd:
                lines.append((config, np.column_stack([steps, mean])))
                continue
            ax.plot(steps, mean, color=colors[config], marker="o" if len(steps) <= 25 else None, markersize=4,
                    label=f"{config} ({seeds[config]} seeds)")
            ax.fill_between(steps, rows["low"], rows["high"], color=colors[config], alpha=0.2, linewidth=0)
        if crowd:
            ax.add_collection(LineCollection([points for _, points in lines], colors=[colors[c] for c, _ in lines],
                                             linewidths=0.8, alpha=0.6))
            ax.autoscale_view()
            crowd_legend(ax, panel["config"], {}, colors)
            notes = f"line: mean over seeds of one configuration, coloured by method\n(crowded panels: no {confidence:.0%} CI bands)"
        ax.set_title(f"{model}, budget {budget}")
        ax.set_xlabel("Optimizer step")
        ax.set_ylabel(label("train_loss"))
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 0.0))  # a band may reach below 0 (3 seeds: wide); a loss never does
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    add_legend(fig, notes)
    return fig


def _step_intervals(panel: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per (config, step): mean, low and high of the value over seeds (stats.t_interval), all at once."""
    values = panel["value"].where(np.isfinite(panel["value"]))
    grouped = values.groupby([panel["config"], panel["step"]], sort=True)
    stats = grouped.agg(["mean", "std", "count"])
    low, high, _ = t_bounds(stats["mean"], stats["std"], stats["count"], confidence)
    return stats.assign(low=low, high=high)
