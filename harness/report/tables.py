"""Tables of one task: the leaderboard (configurations ranked on the headline metric, with costs
and forgetting) and the paired comparisons (configurations that share model, budget and seeds),
as numbers (CSV) and as text (markdown, HTML)."""

from __future__ import annotations

import math
from html import escape
from itertools import combinations

import numpy as np
import pandas as pd

from harness.report.aggregate import STATS
from harness.report.labels import directed_label, label
from harness.report.stats import CONFIDENCE, Interval, paired_tests, rank_with_ties

MAX_ALL_PAIRS = 20  # configurations per model and budget compared pairwise; beyond, each with the best


def leaderboard(summary: pd.DataFrame, headline: str, higher_is_better: bool, forgetting: str | None) -> pd.DataFrame:
    """One row per configuration, best first. Ranks only separate configurations whose intervals
    do not overlap (stats.rank_with_ties). Configurations without a headline value (e.g. only rows of
    an older metric version) are left out: they cannot be ranked."""
    summary = summary[summary[f"{headline}_n"] > 0]
    intervals = [Interval(**dict(zip(STATS, values))) for values in zip(*(summary[f"{headline}_{stat}"] for stat in STATS))]
    ranks = rank_with_ties(intervals, higher_is_better)
    nan = pd.Series(math.nan, index=summary.index)
    board = pd.DataFrame({
        "rank": ranks,
        "method": summary["method"], "variant": summary["variant"], "model": summary["model"], "budget": summary["budget"],
        "n_seeds": summary[f"{headline}_n"],
        "metric": headline, "mean": summary[f"{headline}_mean"], "ci_low": summary[f"{headline}_low"],
        "ci_high": summary[f"{headline}_high"], "std": summary[f"{headline}_std"],
        "trainable_params": summary["trainable_params_mean"], "peak_mem_mib": summary["peak_mem_mib_mean"],
        "train_time_s": summary["train_time_s_mean"], "hardware": summary["hardware"],
        "forgetting_metric": forgetting,
        **{f"forgetting_{stat}": summary[f"{forgetting}_{key}"] if forgetting else nan
           for stat, key in (("mean", "mean"), ("ci_low", "low"), ("ci_high", "high"), ("n", "n"))},
    })
    return board.sort_values(["rank", "mean"], ascending=[True, not higher_is_better], kind="stable").reset_index(drop=True)


def compared_pairs(by_seed: pd.DataFrame, higher_is_better: bool) -> list[tuple[str, str]]:
    """Which configurations (columns of a seeds x configurations table) to compare: every pair of at
    most MAX_ALL_PAIRS of them; beyond that, the best one (by mean over its seeds) with each other,
    k - 1 pairs instead of k(k - 1)/2 (a 2,500-configuration sweep would need 3 million)."""
    configs = sorted(by_seed.columns)
    if len(configs) <= MAX_ALL_PAIRS:
        return list(combinations(configs, 2))
    means = by_seed[configs].mean()
    best = means.idxmax() if higher_is_better else means.idxmin()
    return [(best, other) for other in configs if other != best]


def paired_comparisons(runs: pd.DataFrame, headline: str, higher_is_better: bool, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Pairs of configurations with the same model and budget (`compared_pairs`), paired by seed (same
    seed: same data order, same evaluation items): difference a - b, its interval, the paired t-test
    and the noise-floor flag. Pairs without a seed in common are left out."""
    columns = ["model", "budget", "a", "b", "n_seeds", "metric", "difference", "ci_low", "ci_high", "p_value", "within_noise", "better"]
    tables = []
    for (model, budget), group in runs.groupby(["model", "budget"], sort=True):
        by_seed = group.pivot(index="seed", columns="config", values=headline)
        pairs = compared_pairs(by_seed, higher_is_better)
        if not pairs:
            continue
        a, b = (by_seed[[pair[i] for pair in pairs]].to_numpy(dtype=float) for i in (0, 1))
        test = paired_tests(a, b, confidence)
        table = pd.DataFrame({
            "model": model, "budget": budget, "a": [p[0] for p in pairs], "b": [p[1] for p in pairs], "n_seeds": test.n,
            "metric": headline, "difference": test.mean, "ci_low": test.low, "ci_high": test.high, "p_value": test.p_value,
            "within_noise": test.within_noise,
            "better": np.where(test.within_noise, "", np.where((test.mean > 0) == higher_is_better,
                                                               [p[0] for p in pairs], [p[1] for p in pairs])),
        })
        in_common = (~np.isnan(a) & ~np.isnan(b)).any(axis=0)  # no seed in common: nothing to pair
        tables.append(table[in_common])
    return pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)


def format_interval(mean: float, low: float, high: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(low):
        return f"{mean:.6g} (n={n}, no CI)"
    half = (high - low) / 2
    if half <= 1e-9 * max(1.0, abs(mean)):  # seeds that agree up to float rounding: no spread to show
        return f"{mean:.4g} ± 0"
    # two significant digits of the half-width, and the mean to the same decimal place
    decimals = max(0, 1 - math.floor(math.log10(half)))
    return f"{mean:.{decimals}f} ± {half:.{decimals}f}"


def _ci_header(name: str, confidence: float) -> str:
    return f"{name} (mean ± {confidence:.0%} CI)"


def format_leaderboard(board: pd.DataFrame, higher_is_better: bool, confidence: float = CONFIDENCE) -> pd.DataFrame:
    headline, forgetting = board["metric"].iloc[0], board["forgetting_metric"].iloc[0]
    text = pd.DataFrame({
        "Rank": board["rank"], "Method": board["method"], "Model": board["model"], "Budget": board["budget"],
        "Seeds": board["n_seeds"],
        _ci_header(directed_label(headline, higher_is_better), confidence): [
            format_interval(r.mean, r.ci_low, r.ci_high, r.n_seeds) for r in board.itertuples()],
        "Trainable params": [f"{p:,.0f}" for p in board["trainable_params"]],
        "Peak memory (MiB)": [f"{m:,.0f}" for m in board["peak_mem_mib"]],
        "Train time (s)": [f"{t:.1f}" for t in board["train_time_s"]],
        _ci_header(label(forgetting) if forgetting else "Forgetting", confidence): [
            format_interval(r.forgetting_mean, r.forgetting_ci_low, r.forgetting_ci_high, r.forgetting_n) for r in board.itertuples()],
    })
    if (board["variant"] != "").any():
        text.insert(2, "Variant", board["variant"])
    if board["hardware"].nunique() > 1:  # costs from different machines: say which machine each row's are from
        text.insert(text.columns.get_loc("Train time (s)") + 1, "Hardware", board["hardware"])
    return text


def format_comparisons(comparisons: pd.DataFrame, metric: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    return pd.DataFrame({
        "Model": comparisons["model"], "Budget": comparisons["budget"], "A": comparisons["a"], "B": comparisons["b"],
        "Seeds": comparisons["n_seeds"],
        _ci_header(f"A - B: {label(metric)}", confidence): [
            format_interval(r.difference, r.ci_low, r.ci_high, r.n_seeds) for r in comparisons.itertuples()],
        "p (paired t)": ["n/a" if math.isnan(p) else f"{p:.3g}" for p in comparisons["p_value"]],
        "Verdict": [f"{b} better" if b else "within noise" for b in comparisons["better"]],
    })


def html_page(table: pd.DataFrame, title: str) -> str:
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}"
             "th,td{padding:4px 10px;border-bottom:1px solid #ccc;text-align:left}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title><style>{style}</style></head>\n"
            f"<body><h1>{escape(title)}</h1>\n{table.to_html(index=False, border=0)}\n</body></html>\n")


def markdown(table: pd.DataFrame) -> str:
    # The cells are formatted already; number parsing would reformat them ("3.0" -> "3").
    return table.to_markdown(index=False, disable_numparse=True)
