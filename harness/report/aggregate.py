"""Runs to configurations: one row per configuration with, per quantity, the mean, std, n and
t-interval across its seeds. Every table and figure of the report starts from this frame."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from harness.report.load import CONFIG_KEYS
from harness.report.stats import CONFIDENCE, Interval, t_interval

STATS = ("mean", "std", "low", "high", "n")


def config_summary(runs: pd.DataFrame, quantities: Sequence[str], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Columns: CONFIG_KEYS, config, n_seeds, hardware (every machine its runs ran on, `; `-joined),
    and `<quantity>_<stat>` for every quantity and STATS."""
    rows = []
    for key, group in runs.groupby(list(CONFIG_KEYS), sort=True):
        row = {**dict(zip(CONFIG_KEYS, key)), "config": group["config"].iloc[0], "n_seeds": group["seed"].nunique(),
               "hardware": "; ".join(sorted(group["hardware"].unique()))}
        for quantity in quantities:
            interval = t_interval(group[quantity], confidence)
            row.update({f"{quantity}_{stat}": getattr(interval, stat) for stat in STATS})
        rows.append(row)
    return pd.DataFrame(rows)


def interval_of(row: pd.Series, quantity: str) -> Interval:
    """The Interval of `quantity` stored in one row of a config summary."""
    return Interval(**{stat: row[f"{quantity}_{stat}"] for stat in STATS})
