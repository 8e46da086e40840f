"""Results as the report reads them: one row per finished run with its costs and final metric values
as columns, the training-loss curves, the direction of every quantity, and one line per thing that
had to be left out (naming the files and the fix)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.identity import EXPERIMENT_KEYS
from harness.store import ResultStore

# A configuration is these keys plus `variant` (other settings that differ, e.g. an lr override);
# its runs differ only in the seed.
GROUP_KEYS = ("task", "model", "budget", "method")
CONFIG_KEYS = (*GROUP_KEYS, "variant")
# The first of these a task measured is its headline; its other final metrics follow alphabetically.
QUALITY_PREFERENCE = ("exact_match_flexible", "exact_match_strict", "acc_macro", "accuracy_avg", "mcc", "pearson",
                      "acc", "accuracy", "answer_ce")  # GLUE: CoLA's official metric is mcc, STS-B's pearson
FORGETTING_PREFERENCE = ("forgetting_ce_delta", "forgetting_kl")
FORGETTING_TASK_PREFIX = "forgetting/"
CURVE_METRIC = "train_loss"
COSTS = ("trainable_params", "peak_mem_mib", "train_time_s")  # lower is better by definition
# These follow the seed axis (`train.data_seed: ${seed}`, `train.init_seed: ${seed}`), so they never make a variant.
SEED_SETTINGS = ("seed", "train.data_seed", "train.init_seed")


@dataclass
class Results:
    runs: pd.DataFrame  # one row per finished run: CONFIG_KEYS, config, seed, costs, one column per final metric
    curves: pd.DataFrame  # one row per run x step of the training loss, with the run's CONFIG_KEYS, config, seed
    higher_is_better: dict[str, bool]  # every metric and cost
    quality: dict[str, list[str]]  # per task: its own final metrics, headline candidates first
    forgetting: dict[str, list[str]]  # per task: the forgetting metrics its runs have, preferred first
    problems: list[str]

    @property
    def tasks(self) -> list[str]:
        return sorted(self.runs["task"].unique())

    def headline(self, task: str, requested: str | None = None) -> str:
        measured = self.quality.get(task, [])
        if not measured:
            raise HarnessError(f"task {task} has no final task metrics; rerun its runs with force=true")
        if requested is None:
            return measured[0]
        if requested not in measured:
            raise HarnessError(f"metric {requested!r} was not measured for task {task}; choose one of: {', '.join(measured)}")
        return requested

    def forgetting_metric(self, task: str) -> str | None:
        return next(iter(self.forgetting[task]), None)


def _preferred_first(names, preference: tuple[str, ...]) -> list[str]:
    names = set(names)
    return [n for n in preference if n in names] + sorted(names - set(preference))


def _newest_versions(metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Rows of different metric versions are never compared: keep each metric's newest version."""
    number = metrics["metric_version"].str.extract(r"v(\d+)$", expand=False).astype(float)
    newest = number.groupby([metrics["task"], metrics["metric"]]).transform("max")
    stale = number < newest
    notes = [
        f"{task}/{metric}: left out {len(rows)} rows of older metric versions ({', '.join(sorted(rows['metric_version'].unique()))}), "
        f"not comparable to the newest; rerun those runs with force=true to include them"
        for (task, metric), rows in metrics[stale].groupby(["task", "metric"])
    ]
    return metrics[~stale], notes


def _variants(runs: pd.DataFrame) -> list[str]:
    """'' for runs that differ from their group only in the seed; otherwise the settings that differ
    (`method.r=16`), so runs of different settings are never averaged as if they were seeds."""
    variant = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(list(GROUP_KEYS)):
        flat = pd.json_normalize([json.loads(c) for c in group["config_json"]]).set_axis(group.index)
        flat = flat.drop(columns=[c for c in SEED_SETTINGS if c in flat]).astype(str)
        differing = flat.loc[:, flat.nunique() > 1]
        if differing.empty:
            continue

        differing = differing[[c for c in differing if c.split(".")[0] in EXPERIMENT_KEYS]]
        if not differing.empty:
            variant[group.index] = [", ".join(f"{k}={v}" for k, v in row.items()) for _, row in differing.iterrows()]
    return variant.tolist()


def _name_columns(final: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each final metric's column in the one-row-per-run table. A run's own task and each forgetting
    probe (`forgetting/<probe>`) keep plain metric names; the rows of their parts (a suite's member
    datasets, the general suite's tasks) are `<task>/<metric>`, so no two rows of a run share a column."""
    run_task = final["run_id"].map(runs.set_index("run_id")["task"])
    is_probe = final["task"].str.startswith(FORGETTING_TASK_PREFIX) & (final["task"].str.count("/") == 1)
    primary = (final["task"] == run_task) | is_probe
    return final.assign(column=final["metric"].where(primary, final["task"] + "/" + final["metric"]))


def load_results(results_dir: Path | str) -> Results:
    """Read a results folder (a sweep's `results_dir`). Unreadable or missing part files are left
    out and named in `problems`; raises HarnessError when nothing is left to report."""
    root = Path(results_dir)
    if not (root / "runs").is_dir():
        raise HarnessError(f"{root} has no runs/ folder; pass the results_dir a sweep wrote to (default: results)")
    runs, metrics, bad = ResultStore(root).read(strict=False)
    problems = []
    if bad:
        problems.append(f"skipped unreadable result files: {', '.join(bad)}; delete them and rerun the sweep to recompute those runs")
    metrics, stale = _newest_versions(metrics)
    problems += stale

    runs = runs[runs["status"] == "finished"]
    final = metrics[metrics["step"].isna()]
    with_metrics = set(final["run_id"])
    without = [root / "metrics" / f"{r}.parquet" for r in runs["run_id"] if r not in with_metrics]
    missing = [str(p) for p in without if not p.exists()]  # the unreadable ones are named above
    if missing:
        problems.append(f"finished runs without their metrics part: {', '.join(missing)} missing; "
                        f"delete the matching runs/<run_id>.parquet and rerun the sweep to recompute them")
    runs = runs[runs["run_id"].isin(final["run_id"])]
    if runs.empty:
        raise HarnessError(f"no finished runs with metrics in {root}" + "".join(f"; {p}" for p in problems)
                           + ("" if problems else f"; run a sweep first (python -m harness results_dir={root})"))

    final = _name_columns(final, runs)
    values = final.pivot(index="run_id", columns="column", values="value")
    runs = runs.assign(peak_mem_mib=runs["peak_mem_bytes"] / 2**20).join(values, on="run_id").reset_index(drop=True)
    runs["variant"] = _variants(runs)
    runs["config"] = [m if not v else f"{m} [{v}]" for m, v in zip(runs["method"], runs["variant"])]

    curves = metrics.loc[(metrics["metric"] == CURVE_METRIC) & metrics["step"].notna(), ["run_id", "step", "value"]]
    curves = curves.merge(runs[["run_id", *CONFIG_KEYS, "config", "seed"]], on="run_id")

    primary = final[final["column"] == final["metric"]]
    is_forgetting = primary["task"].str.startswith(FORGETTING_TASK_PREFIX)
    quality = {task: _preferred_first(rows["metric"], QUALITY_PREFERENCE) for task, rows in primary[~is_forgetting].groupby("task")}
    forgetting_names = set(primary.loc[is_forgetting, "metric"])
    forgetting = {
        task: _preferred_first([m for m in forgetting_names if rows[m].notna().any()], FORGETTING_PREFERENCE)
        for task, rows in runs.groupby("task")
    }
    directions = final.groupby("column")["higher_is_better"].first().astype(bool).to_dict()
    higher_is_better = {**dict.fromkeys(COSTS, False), **directions}
    return Results(runs, curves, higher_is_better, quality, forgetting, problems)
