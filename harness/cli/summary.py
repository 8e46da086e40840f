"""Human-readable output: one line per run, one comparison table per sweep."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from harness.report.load import variants
from harness.store.result_store import ResultStore

HEADLINE = ("exact_match_flexible", "exact_match_strict", "answer_ce", "accuracy_avg", "acc", "forgetting_ce_delta",
            "forgetting_acc_delta", "forgetting_kl")


def run_label(method: str, model: str, task: str, budget: str, seed: int) -> str:
    """Which run this is, in the words of its config: `lora smollm2-135m gsm8k steps50 seed=0`."""
    return f"{method} {model} {task} {budget} seed={seed}"


def run_line(row: dict, metrics: Iterable[dict]) -> str:
    """A stored run in one line (two when it finished: its headline metrics and costs, then learning vs
    forgetting); harness/cli/console.py puts the event in front of it."""
    head = f"{run_label(row['method'], row['model'], row['task'], row['budget'], row['seed'])} ({row['run_id']})"
    if row["status"] != "finished":
        return f"{head}: {row.get('error')}"
    values = {m["metric"]: m["value"] for m in metrics if m["step"] is None}
    shown = " ".join(f"{k}={values[k]:.4f}" for k in HEADLINE if k in values)
    speed = f"{row['tokens_per_s']:.0f} tok/s " if row.get("tokens_per_s") is not None else ""  # none: no training
    return (f"{head}: {shown} | trainable={row['trainable_params']:,} train={row['train_time_s']:.0f}s "
            f"{speed}peak_mem={row['peak_mem_bytes'] / 2**20:.0f}MiB"
            f"\n  {learning_vs_forgetting(row['task'], metrics)}")


def learning_vs_forgetting(task: str, metrics: Iterable[dict]) -> str:
    """The run's gains on its own task next to its forgetting probes' deltas, signed."""
    final = [m for m in metrics if m["step"] is None]
    gains = [f"{m['metric']}={m['value']:+.4f}" for m in final if m["task"] == task and m["metric"].startswith("gain_")]
    forgetting = [f"{m['metric']}={m['value']:+.4f}" for m in final
                  if m["task"].count("/") == 1 and m["task"].startswith("forgetting/") and m["metric"].startswith("forgetting_")]
    return f"learning: {' '.join(gains) or '(off)'} | forgetting: {' '.join(forgetting) or '(off)'}"


def comparison_table(store: ResultStore, run_ids: Iterable[str]) -> pd.DataFrame:
    """Mean and std over seeds of the headline metrics and costs, one row per configuration: runs that
    differ in more than the seed (settings, data) are separate variants, as in the report."""
    runs, metrics, _ = store.read(strict=False)
    runs = runs[runs["run_id"].isin(set(run_ids)) & (runs["status"] == "finished")]
    if runs.empty:
        return pd.DataFrame()
    final = metrics[metrics["step"].isna() & metrics["metric"].isin(HEADLINE)]
    wide = final.pivot_table(index="run_id", columns="metric", values="value").reset_index()
    merged = runs.merge(wide, on="run_id").reset_index(drop=True)
    merged["variant"] = variants(merged)[0]
    keys = ["method", "model", "task", "budget", "variant"]
    values = [m for m in HEADLINE if m in merged] + ["train_time_s", "tokens_per_s"]
    grouped = merged.groupby(keys)
    table = grouped[values].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table.insert(0, "trainable_params", grouped["trainable_params"].first())
    table.insert(0, "seeds", grouped["seed"].nunique())
    return table.reset_index()


def format_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no finished runs)"
    shown = ["method", "model", "task", "budget", *(["variant"] if (table["variant"] != "").any() else []), "seeds"]
    out = table[[*shown, "trainable_params"]].copy()
    for col in [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]:
        mean, std = table[f"{col}_mean"], table[f"{col}_std"].fillna(0.0)
        out[col] = [f"{m:.4g} ± {s:.2g}" for m, s in zip(mean, std)]
    return out.to_string(index=False)
