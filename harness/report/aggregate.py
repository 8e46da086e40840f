"""Runs to configurations: one row per configuration with, per quantity, the mean, std, n and
t-interval across its seeds. Every table and figure of the report starts from this frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.report.load import CONFIG_KEYS
from harness.report.stats import CONFIDENCE, t_bounds

STATS = ("mean", "std", "low", "high", "n")


def config_summary(runs: pd.DataFrame, quantities: Sequence[str], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Columns: CONFIG_KEYS, config, n_seeds, hardware (every machine its runs ran on, `; `-joined),
    and `<quantity>_<stat>` for every quantity and STATS: `stats.t_interval` of each configuration's
    seeds, computed for all configurations at once (one groupby, not one pass per configuration)."""
    if runs.empty:
        return pd.DataFrame()
    keys = [runs[k] for k in CONFIG_KEYS]
    quantities = list(dict.fromkeys(quantities))
    values = runs[quantities].astype(float)
    grouped = values.where(np.isfinite(values)).groupby(keys, sort=True)
    mean, std, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
    info = runs.groupby(list(CONFIG_KEYS), sort=True).agg(
        config=("config", "first"), n_seeds=("seed", "nunique"),
        hardware=("hardware", lambda machines: "; ".join(sorted(machines.unique()))))
    columns = {name: info[name] for name in ("config", "n_seeds", "hardware")}
    for quantity in quantities:
        low, high, spread = t_bounds(mean[quantity], std[quantity], n[quantity], confidence)
        columns.update({f"{quantity}_mean": mean[quantity], f"{quantity}_std": pd.Series(spread, index=mean.index),
                        f"{quantity}_low": pd.Series(low, index=mean.index), f"{quantity}_high": pd.Series(high, index=mean.index),
                        f"{quantity}_n": n[quantity]})
    return pd.DataFrame(columns, index=info.index).reset_index()

