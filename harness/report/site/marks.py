"""What the site's figures share: a configuration's colour (the report's, figures.config_colors)
and marker, its hover text from the report's intervals (tables.format_interval), error bars from
the config summary, the base model's mark, and a figure as an HTML fragment that calls the
plotly.js the page has loaded."""

from __future__ import annotations

import math
from html import escape

import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex

from harness.report.figures import config_colors, method_of
from harness.report.labels import LOG_SCALE, directed_label, short_label
from harness.report.tables import format_interval

BASE_NAME = "base model (no training)"
BASE_COLOR = "#111111"
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "pentagon", "hexagon", "star-square")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def hex_colors(configs: pd.Series) -> dict[str, str]:
    """The report's colour of every configuration, as `#rrggbb`."""
    return {name: to_hex(color) for name, color in config_colors(configs).items()}


def model_symbols(models: pd.Series) -> dict[str, str]:
    return {model: SYMBOLS[i % len(SYMBOLS)] for i, model in enumerate(sorted(models.unique()))}


def clean(values) -> list:
    """Numbers for plotly's JSON: NaN and infinities as None (no mark)."""
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def interval_text(row: pd.Series, quantity: str) -> str:
    n = row[f"{quantity}_n"]
    return format_interval(row[f"{quantity}_mean"], row[f"{quantity}_low"], row[f"{quantity}_high"], 0 if pd.isna(n) else int(n))


def hover_text(rows: pd.DataFrame, quantities: list[str], confidence: float) -> list[str]:
    """One hover label per configuration: its label, then each quantity's mean ± interval."""
    return [
        f"<b>{escape(row['label'])}</b><br>" + "<br>".join(f"{escape(short_label(q))}: {interval_text(row, q)}" for q in quantities)
        + f"<br>± {confidence:.0%} CI over {int(row['n_seeds'])} seeds"
        for _, row in rows.iterrows()
    ]


def error_bars(rows: pd.DataFrame, quantity: str, visible: bool = True) -> dict:
    """Plotly error bars of each configuration's interval; none where there is none (one seed)."""
    mean = rows[f"{quantity}_mean"]
    above = (rows[f"{quantity}_high"] - mean).fillna(0.0)
    below = (mean - rows[f"{quantity}_low"]).fillna(0.0)
    return {"type": "data", "symmetric": False, "array": clean(above), "arrayminus": clean(below), "visible": visible,
            "thickness": 1.2, "width": 3}


def axis_settings(name: str, higher_is_better: bool) -> dict:
    return {"title": {"text": directed_label(name, higher_is_better)}, "type": "log" if name in LOG_SCALE else "linear"}


def trace_key(summary: pd.DataFrame, crowd: bool) -> pd.Series:
    """What one trace holds: a configuration, or in a crowded figure every configuration of a method."""
    return summary["config"].map(method_of) if crowd else summary["config"]


def figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as a `<div>` and the script that draws it; plotly.js itself is loaded once per
    page (html.page), from the site's folder."""
    return ('<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
            + "</div>")
