"""The interactive Pareto figure: one quality metric (y) against the cost the reader picks (x) in a
row of buttons above the plot (plotly updatemenus: each button swaps the x values, error bars, hover
text, the frontier and the x axis). One mark per configuration at its means, with its interval as
error bars; the frontier (harness/report/frontier.py) dashed; the base model, where the results
have it, as a black star and a dotted line at its quality: the reference every method starts from."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.report.figures import crowded
from harness.report.frontier import frontier, on_axis
from harness.report.labels import BASE_METHOD, short_label
from harness.report.site.marks import (BASE_COLOR, BASE_NAME, axis_settings, clean, error_bars, hover_text,
                                       model_symbols, trace_key)

FRONTIER_NAME = "Pareto frontier"


def _groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The marks' traces in order: one per configuration (per method when crowded), the base last."""
    trained = summary[summary["method"] != BASE_METHOD]
    groups = list(trained.groupby(trace_key(trained, crowded(summary)), sort=True))
    base = summary[summary["method"] == BASE_METHOD]
    return groups + ([(BASE_NAME, base)] if not base.empty else [])


def _base_label(label: str) -> str:
    """`base model`, plus the model and budget where the figure has several (labels.config_labels)."""
    return "base model" + (f": {label.removeprefix('base, ')}" if label != BASE_METHOD else "")


def _cost_view(summary: pd.DataFrame, groups: list[tuple[str, pd.DataFrame]], quality: str, cost: str,
               higher_is_better: dict[str, bool], confidence: float) -> tuple[dict, dict]:
    """(trace data, layout) of the figure with `cost` on x: what its button sets."""
    bars = not crowded(summary)
    front = frontier(on_axis(summary, cost), cost, quality, higher_is_better)
    data = {
        "x": [clean(rows[f"{cost}_mean"]) for _, rows in groups] + [clean(front[f"{cost}_mean"])],
        "y": [clean(rows[f"{quality}_mean"]) for _, rows in groups] + [clean(front[f"{quality}_mean"])],
        "error_x": [error_bars(rows, cost, bars) for _, rows in groups] + [{"visible": False}],
        "text": [hover_text(rows, [quality, cost], confidence) for _, rows in groups] + [None],
    }
    axis = axis_settings(cost, higher_is_better[cost])
    return data, {"xaxis.title.text": axis["title"]["text"], "xaxis.type": axis["type"]}


def pareto_chart(summary: pd.DataFrame, quality: str, costs: list[str], higher_is_better: dict[str, bool],
                 colors: dict[str, str], pages: dict[str, str], confidence: float, title: str) -> go.Figure:
    """`summary`: the task's config summary (with `label`); `colors`: hex colour per config; `pages`:
    each config's page, relative to the figure's page, opened when its mark is clicked."""
    groups = _groups(summary)
    symbols = model_symbols(summary["model"])
    crowd = crowded(summary)
    fig = go.Figure()
    for name, rows in groups:
        is_base = name == BASE_NAME
        fig.add_trace(go.Scatter(
            name=name, mode="markers", hovertemplate="%{text}<extra></extra>",
            customdata=[[pages.get(c, "")] for c in rows["config"]],
            marker={"color": BASE_COLOR if is_base else colors[rows["config"].iloc[0]], "size": 14 if is_base else 10,
                    "symbol": "star" if is_base else [symbols[m] for m in rows["model"]],
                    "line": {"width": 0.5, "color": "white"}},
            error_y=error_bars(rows, quality, not crowd),
        ))
    fig.add_trace(go.Scatter(name=FRONTIER_NAME, mode="lines", hoverinfo="skip",
                             line={"dash": "dash", "color": "#595959", "width": 1.4}))
    views = [_cost_view(summary, groups, quality, cost, higher_is_better, confidence) for cost in costs]
    for i, trace in enumerate(fig.data):  # the figure as it opens: the first cost's view
        trace.update({key: values[i] for key, values in views[0][0].items()})
    for _, row in summary[summary["method"] == BASE_METHOD].iterrows():
        fig.add_hline(y=row[f"{quality}_mean"], line={"dash": "dot", "color": BASE_COLOR, "width": 1},
                      annotation_text=_base_label(row["label"]), annotation_position="top left")
    buttons = [{"label": short_label(cost), "method": "update", "args": [data, layout]} for cost, (data, layout) in zip(costs, views)]
    y_axis = axis_settings(quality, higher_is_better[quality])
    first_x = axis_settings(costs[0], higher_is_better[costs[0]])
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "y": 0.98, "yanchor": "top"}, height=580, margin={"t": 120},
        template="plotly_white", hovermode="closest",
        xaxis=first_x, yaxis=y_axis,
        legend={"title": {"text": f"error bars: {confidence:.0%} CI over seeds" if not crowd else
                          f"{len(summary)} configurations, by method"}},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons, "active": 0, "showactive": True,
                      "x": 0.0, "xanchor": "left", "y": 1.1, "yanchor": "middle", "pad": {"l": 45}}],
        annotations=[*fig.layout.annotations, {"text": "Cost:", "showarrow": False, "x": 0.0, "xref": "paper", "xanchor": "left",
                                                "y": 1.1, "yref": "paper", "yanchor": "middle"}],
    )
    return fig
