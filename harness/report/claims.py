"""Published qualitative claims checked on our runs: `python -m harness.report RESULTS --reference
NAME`, where `references/<NAME>.csv` has a `claim` column (CLAIM_COLUMNS, one row per claim).

A claim says that `method`'s curve metric (`val_loss`, `train_loss`) is `lower` (or `higher`) than
`baseline`'s at the listed `steps`, everything else equal. Runs are paired by seed within one
configuration pair (same task, model and budget): the seed sets both the data order and the
adapter init, so both arms saw the same batches. For each claim x step x configuration pair:

    d_s = value(method, seed s) - value(baseline, seed s)      for every seed both ran
    interval: t-interval of mean(d_s), k - 1 degrees of freedom, at `confidence`

A value at step s is the mean of the metric over the `window` recorded steps ending at s (a
per-batch training loss is noisy; held-out loss uses window 1). Verdict: `holds` when the interval
lies entirely on the claimed side of zero, `contradicted` when entirely on the other side,
`inconclusive` when it contains zero, `too few seeds` below two paired seeds, `not run` when no
configuration has both methods at that step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import HarnessError
from harness.report.load import CONFIG_KEYS, Results
from harness.report.stats import CONFIDENCE, paired_test, t_interval
from harness.report.tables import format_interval

CLAIM_COLUMNS = ("claim", "source_id", "statement", "method", "baseline", "metric", "direction", "steps", "window")
DIRECTIONS = ("lower", "higher")
PAIR_KEYS = ("task", "model", "budget")


def is_claims_file(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        return "claim" in f.readline().strip().split(",")


def check_claims(table: pd.DataFrame, path: Path, known_methods: set[str], cited: set[str]) -> pd.DataFrame:
    """The rows of a claims file, validated, with `steps` as a list of ints and `window` an int."""
    rows = []
    for i, row in table.iterrows():
        line = i + 2  # line 1 is the header
        empty = [c for c in CLAIM_COLUMNS if not row[c].strip()]
        if empty:
            raise HarnessError(f"{path} line {line}: empty {', '.join(empty)}; every claim needs them")
        for column in ("method", "baseline"):
            if row[column] not in known_methods:
                raise HarnessError(f"{path} line {line}: {column}={row[column]!r} is not a harness method; use a registry name")
        if row["direction"] not in DIRECTIONS:
            raise HarnessError(f"{path} line {line}: direction={row['direction']!r}; use one of: {', '.join(DIRECTIONS)}")
        if row["source_id"] not in cited:
            raise HarnessError(f"{path} line {line}: source_id={row['source_id']!r} is not cited in sources.csv; add it there")
        try:
            steps, window = [int(s) for s in row["steps"].split()], int(row["window"])
        except ValueError:
            raise HarnessError(f"{path} line {line}: steps={row['steps']!r} and window={row['window']!r} must be whole "
                               "numbers (steps separated by spaces)") from None
        if not steps or min(steps) < 1 or window < 1:
            raise HarnessError(f"{path} line {line}: steps and window must be >= 1")
        rows.append({**row.to_dict(), "steps": steps, "window": window})
    return pd.DataFrame(rows)


def curve_values(results: Results) -> pd.DataFrame:
    """One row per finished run x recorded step x metric: value, the run's CONFIG_KEYS and seed."""
    metrics = results.metrics  # newest metric versions only: never mix them
    steps = metrics.loc[metrics["step"].notna(), ["run_id", "metric", "step", "value"]]
    return steps.merge(results.runs[["run_id", *CONFIG_KEYS, "seed"]], on="run_id")


def _at_step(runs: pd.DataFrame, step: int, window: int) -> pd.Series:
    """seed -> mean value over the last `window` recorded steps <= step; seeds that never reached it are left out."""
    reached = runs.groupby("seed")["step"].max() >= step
    recent = runs[runs["step"] <= step].sort_values("step").groupby("seed").tail(window)
    means = recent.groupby("seed")["value"].mean()
    return means[means.index.isin(reached[reached].index)]


def compare_claims(claims: pd.DataFrame, values: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    rows = []
    for claim in claims.itertuples():
        base = {"claim": claim.claim, "statement": claim.statement, "method": claim.method, "baseline": claim.baseline,
                "metric": claim.metric, "direction": claim.direction, "source_id": claim.source_id, "window": claim.window}
        of_metric = values[values["metric"] == claim.metric]
        pairs = [(key, group) for key, group in of_metric.groupby(list(PAIR_KEYS), sort=True)
                 if {claim.method, claim.baseline} <= set(group["method"])]
        for step in claim.steps:
            if not pairs:
                rows.append({**base, "step": step, "verdict": "not run"})
            for key, group in pairs:
                a = _at_step(group[group["method"] == claim.method], step, claim.window)
                b = _at_step(group[group["method"] == claim.baseline], step, claim.window)
                seeds = a.index.intersection(b.index)
                if seeds.empty:
                    rows.append({**base, **dict(zip(PAIR_KEYS, key)), "step": step, "verdict": "not run"})
                    continue
                rows.append({**base, **dict(zip(PAIR_KEYS, key)), "step": step,
                             **_paired(a[seeds].to_numpy(), b[seeds].to_numpy(), claim.direction, confidence)})
    columns = ["claim", "statement", "method", "baseline", "metric", "direction", *PAIR_KEYS, "step", "window", "n_seeds",
               "method_mean", "method_low", "method_high", "baseline_mean", "baseline_low", "baseline_high",
               "difference", "difference_low", "difference_high", "p_value", "verdict", "source_id"]
    return pd.DataFrame(rows).reindex(columns=columns)


def _paired(a: np.ndarray, b: np.ndarray, direction: str, confidence: float) -> dict:
    test = paired_test(a, b, confidence)
    d = test.difference
    if d.n < 2:
        verdict = "too few seeds"
    else:
        claimed_side = d.high < 0 if direction == "lower" else d.low > 0
        other_side = d.low > 0 if direction == "lower" else d.high < 0
        verdict = "holds" if claimed_side else ("contradicted" if other_side else "inconclusive")
    ia, ib = t_interval(a, confidence), t_interval(b, confidence)
    return {"n_seeds": d.n, "method_mean": ia.mean, "method_low": ia.low, "method_high": ia.high,
            "baseline_mean": ib.mean, "baseline_low": ib.low, "baseline_high": ib.high,
            "difference": d.mean, "difference_low": d.low, "difference_high": d.high,
            "p_value": test.p_value, "verdict": verdict}


def format_claims(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    def interval(mean, low, high, n):
        return "" if pd.isna(mean) else format_interval(mean, low, high, int(n))

    ci = f"{confidence:.0%} CI"
    return pd.DataFrame({
        "Claim": table["claim"], "Compared": [f"{a} vs {b}" for a, b in zip(table["method"], table["baseline"])],
        "Metric": [f"{m} ({d})" for m, d in zip(table["metric"], table["direction"])],
        "Model": table["model"], "Budget": table["budget"], "Step": table["step"], "Seeds": table["n_seeds"],
        f"Method (mean ± {ci})": [interval(r.method_mean, r.method_low, r.method_high, r.n_seeds) for r in table.itertuples()],
        f"Baseline (mean ± {ci})": [interval(r.baseline_mean, r.baseline_low, r.baseline_high, r.n_seeds)
                                    for r in table.itertuples()],
        f"Paired difference (mean ± {ci})": [interval(r.difference, r.difference_low, r.difference_high, r.n_seeds)
                                             for r in table.itertuples()],
        "Verdict": table["verdict"],
    })


def claims_summary(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "inconclusive", "contradicted", "too few seeds", "not run"))
