"""The site's other figures: learning against forgetting (every run a faint dot, every configuration
at its means with its intervals, the base model at the origin it defines), and the training loss
per optimizer step (one figure per model x budget, mean over seeds with its interval band, from the
report's own per-step intervals)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.report.figures import _step_intervals as step_intervals
from harness.report.figures import MAX_LABELLED_CONFIGS, crowded, method_of
from harness.report.labels import BASE_METHOD, label
from harness.report.site.marks import (BASE_COLOR, BASE_NAME, axis_settings, clean, error_bars, hover_text,
                                       model_symbols, trace_key)
from harness.report.stats import CONFIDENCE

def learning_forgetting_chart(runs: pd.DataFrame, summary: pd.DataFrame, learning: str, forgetting: str,
                              higher_is_better: dict[str, bool], colors: dict[str, str], pages: dict[str, str],
                              confidence: float, title: str) -> go.Figure:
    """Forgetting (x) against the task metric (y). Faint dots: single runs (hover names the seed).
    Marks: configurations at their means with error bars. Clicking a mark opens its page."""
    crowd = crowded(summary)
    symbols = model_symbols(summary["model"])
    fig = go.Figure()
    key = trace_key(summary, crowd)
    for name, rows in summary.groupby(key, sort=True):
        is_base = (rows["method"] == BASE_METHOD).all()
        color = BASE_COLOR if is_base else colors[rows["config"].iloc[0]]
        shown = BASE_NAME if is_base else name
        members = runs[runs["config"].isin(rows["config"])]
        fig.add_trace(go.Scatter(
            name=shown, legendgroup=shown, showlegend=False, mode="markers", x=clean(members[forgetting]),
            y=clean(members[learning]), marker={"color": color, "size": 6, "opacity": 0.35},
            text=[f"{c}, seed {s}" for c, s in zip(members["config"], members["seed"])], hovertemplate="%{text}<extra>run</extra>",
        ))
        fig.add_trace(go.Scatter(
            name=shown, legendgroup=shown, mode="markers", x=clean(rows[f"{forgetting}_mean"]), y=clean(rows[f"{learning}_mean"]),
            error_x=error_bars(rows, forgetting, not crowd), error_y=error_bars(rows, learning, not crowd),
            text=hover_text(rows, [learning, forgetting], confidence), hovertemplate="%{text}<extra></extra>",
            customdata=[[pages.get(c, "")] for c in rows["config"]],
            marker={"color": color, "size": 14 if is_base else 10,
                    "symbol": "star" if is_base else [symbols[m] for m in rows["model"]]},
        ))
    fig.update_layout(
        title={"text": title}, height=560, template="plotly_white", hovermode="closest",
        xaxis=axis_settings(forgetting, higher_is_better[forgetting]), yaxis=axis_settings(learning, higher_is_better[learning]),
        legend={"title": {"text": f"error bars: {confidence:.0%} CI over seeds; faint dots: single runs"}},
    )
    return fig


def _band(steps, low, high, color: str, group: str) -> go.Scatter:
    """The interval band of one line: its upper edge out and its lower edge back, filled."""
    return go.Scatter(x=[*steps, *steps[::-1]], y=clean([*high, *low[::-1]]), mode="lines", fill="toself", fillcolor=color,
                      opacity=0.2, line={"width": 0, "color": color}, hoverinfo="skip", showlegend=False, legendgroup=group)


def curve_charts(curves: pd.DataFrame, colors: dict[str, str], title: str,
                 confidence: float = CONFIDENCE) -> list[tuple[str, go.Figure]]:
    """(heading, figure) per model x budget: training loss per optimizer step, one line per
    configuration (mean over seeds) with its interval band; a figure of more than MAX_LABELLED_CONFIGS
    configurations draws thin lines coloured by method, one legend entry per method, no bands."""
    charts = []
    for (model, budget), panel in curves.groupby(["model", "budget"], sort=True):
        by_step = step_intervals(panel, confidence)
        seeds = panel.groupby("config")["seed"].nunique()
        crowd = panel["config"].nunique() > MAX_LABELLED_CONFIGS
        fig = go.Figure()
        in_legend: set[str] = set()
        for config, rows in by_step.groupby(level="config", sort=True):
            steps = rows.index.get_level_values("step").tolist()
            group = method_of(config) if crowd else config
            if not crowd:
                fig.add_trace(_band(steps, rows["low"].tolist(), rows["high"].tolist(), colors[config], group))
            fig.add_trace(go.Scatter(
                name=group if crowd else f"{config} ({seeds[config]} seeds)", legendgroup=group, x=steps, y=clean(rows["mean"]),
                mode="lines" if crowd or len(steps) > 25 else "lines+markers", showlegend=group not in in_legend,
                line={"color": colors[config], "width": 0.8 if crowd else 2}, hovertemplate=f"{config}<br>step %{{x}}: %{{y:.4f}}<extra></extra>",
            ))
            in_legend.add(group)
        fig.update_layout(
            title={"text": f"{title}: {model}, budget {budget}"}, height=480, template="plotly_white",
            xaxis={"title": {"text": "Optimizer step"}, **({"dtick": 1} if panel["step"].max() <= 12 else {})},
            yaxis={"title": {"text": label("train_loss")}, "rangemode": "nonnegative"},  # a band may reach below 0; a loss never does
            legend={"title": {"text": "line: mean over seeds" + ("" if crowd else f"; band: {confidence:.0%} CI over seeds")}},
        )
        charts.append((f"{model}, budget {budget}", fig))
    return charts
