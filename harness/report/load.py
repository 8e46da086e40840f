"""Results as the report reads them: one row per finished run with its costs and final metric values
as columns, the training-loss curves, the direction of every quantity, and one line per thing that
had to be left out (naming the files and the fix)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.config.identity import EXPERIMENT_KEYS, LEGACY_VALUES
from harness.core.errors import HarnessError
from harness.costs.hardware import hardware_key
from harness.store.result_store import ResultStore

# A configuration is these keys plus `variant` (other settings or data that differ, e.g. an lr
# override); its runs differ only in the seed.
GROUP_KEYS = ("task", "model", "budget", "method")
SELECTABLE = GROUP_KEYS  # what `--only KEY=VALUES` of the report can pick runs by
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
HASH = re.compile(r"[0-9a-f]{16,}")  # a content hash in data_json, shown by its first 8 digits


@dataclass
class Results:
    runs: pd.DataFrame  # one row per finished run: CONFIG_KEYS, config, seed, costs, one column per final metric
    curves: pd.DataFrame  # one row per run x step of the training loss, with the run's CONFIG_KEYS, config, seed
    higher_is_better: dict[str, bool]  # every metric and cost
    quality: dict[str, list[str]]  # per task: its own final metrics, headline candidates first
    forgetting: dict[str, list[str]]  # per task: the forgetting metrics its runs have, preferred first
    problems: list[str]
    root: Path  # the results folder
    metrics: pd.DataFrame  # its metrics table, long form, newest metric versions only (every run's; join on `runs`)

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
    codes, versions = pd.factorize(metrics["metric_version"])  # a few distinct versions among many rows
    numbers = pd.Series(versions).str.extract(r"v(\d+)$", expand=False).astype(float).to_numpy()
    number = pd.Series(numbers[codes], index=metrics.index).where(codes >= 0)
    newest = number.groupby([metrics["task"], metrics["metric"]]).transform("max")
    stale = number < newest
    notes = [
        f"{task}/{metric}: left out {len(rows)} rows of older metric versions ({', '.join(sorted(rows['metric_version'].unique()))}), "
        f"not comparable to the newest; rerun those runs with force=true to include them"
        for (task, metric), rows in metrics[stale].groupby(["task", "metric"])
    ]
    return metrics[~stale], notes


def _distinct(records: list[dict]) -> tuple[list[dict], list[int]]:
    """The distinct records, in order of first appearance, and each record's index among them. The
    runs of a configuration differ only in the seed: their settings are flattened once, not per run
    (flattening to columns and text is the same for the distinct records as for all of them)."""
    index: dict[str, int] = {}
    firsts: list[dict] = []
    rows = []
    for record in records:
        key = json.dumps(record, sort_keys=True, default=str)
        if key not in index:
            index[key] = len(firsts)
            firsts.append(record)
        rows.append(index[key])
    return firsts, rows


def _without_seeds(config: dict) -> dict:
    """The experiment part of a config (EXPERIMENT_KEYS), without the seed axis (SEED_SETTINGS)."""
    kept = {k: v for k, v in config.items() if k in EXPERIMENT_KEYS and k not in SEED_SETTINGS}
    for path in (p for p in SEED_SETTINGS if "." in p):
        key, option = path.split(".", 1)
        if isinstance(kept.get(key), dict) and option in kept[key]:
            kept[key] = {k: v for k, v in kept[key].items() if k != option}
    return kept


def _config_settings(configs: pd.Series) -> tuple[pd.DataFrame, list[int]]:
    """The distinct experiment settings of these runs as text, one row each (the flattened config,
    seed axis left out), and each run's row."""
    distinct, rows = _distinct([_without_seeds(json.loads(c)) for c in configs])
    config = pd.json_normalize(distinct)
    for (key, option), legacy in LEGACY_VALUES.items():  # rows from before an option existed had its legacy value
        if f"{key}.{option}" in config:
            config[f"{key}.{option}"] = config[f"{key}.{option}"].astype(object).where(config[f"{key}.{option}"].notna(), legacy)
    return config[[c for c in config if c.split(".")[0] in EXPERIMENT_KEYS and c not in SEED_SETTINGS]].astype(str), rows


def _data_settings(identities: pd.Series) -> tuple[pd.DataFrame, list[int]]:
    """The distinct data identities of these runs as text, `data.<field>` (data_json's part in the run
    id), one row each, and each run's row."""
    distinct, rows = _distinct([{k: v for k, v in json.loads(d or "{}").items() if k != "evaluation"} for d in identities])
    return pd.json_normalize(distinct).add_prefix("data.").astype(str), rows


def _differences(settings: pd.DataFrame, rows: list[int]) -> list[str]:
    """Per run (its row of `settings`), the settings that differ between the rows (`method.r=16`);
    hashes cut to 8 digits."""
    differing = settings.loc[:, settings.nunique() > 1]
    if differing.columns.empty:
        return [""] * len(rows)
    names = list(differing.columns)
    texts = [", ".join(f"{k}={_shown(v)}" for k, v in zip(names, row)) for row in differing.itertuples(index=False, name=None)]
    return [texts[r] for r in rows]


def _shown(value) -> str:
    """A setting as text: hashes cut to 8 digits; a setting some runs lack (NaN) as `nan`."""
    text = value if isinstance(value, str) else str(value)
    return text[:8] if HASH.fullmatch(text) else text


def variants(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(variant per run, notes). '' for runs that differ from their group only in the seed; otherwise
    the settings that differ (`method.r=16`), then, among runs of equal settings, the data identity
    that differs (`data.eval_sha256=1a2b3c4d`: a run re-done after its data changed). Runs of
    different settings or data are never averaged as if they were seeds. Runs that still share a
    variant and a seed (run ids of another harness version) get their run id too, and a note."""
    variant = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(list(GROUP_KEYS)):
        variant[group.index] = _differences(*_config_settings(group["config_json"]))
    with_variant = runs.assign(variant=variant, data_json=runs["data_json"].fillna(""))
    data_differs = with_variant.groupby(list(CONFIG_KEYS))["data_json"].transform("nunique") > 1
    for _, group in with_variant[data_differs].groupby(list(CONFIG_KEYS)):  # the same data throughout: nothing to add
        variant[group.index] = [", ".join(filter(None, parts))
                                for parts in zip(group["variant"], _differences(*_data_settings(group["data_json"])))]
    clash = runs.assign(variant=variant).duplicated([*CONFIG_KEYS, "seed"], keep=False)
    if not clash.any():
        return variant.tolist(), []
    ids = runs.loc[clash, "run_id"]
    variant[clash] = [", ".join(filter(None, (v, f"run={r[:8]}"))) for v, r in zip(variant[clash], ids)]
    return variant.tolist(), [f"runs {', '.join(ids)} share configuration, data and seed but not their run id (written by "
                              "different harness versions?); each is shown as its own variant; delete the ones not wanted"]


def _hardware(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(hardware label per run, notes). Time and memory are only comparable on the same hardware:
    a configuration whose seeds ran on different hardware is named in a note (its costs pool them)."""
    column = runs["hardware_json"] if "hardware_json" in runs else pd.Series(None, index=runs.index, dtype=object)
    keys = {h: hardware_key(json.loads(h)) for h in column.unique() if isinstance(h, str)}  # few machines, many runs
    labels = pd.Series([keys[h] if isinstance(h, str) else "not recorded" for h in column], index=runs.index)
    grouped = labels.groupby([runs[k] for k in CONFIG_KEYS])
    machines = grouped.nunique()
    mixed = [f"{' '.join(str(k) for k in key if k)} ({'; '.join(sorted(group.unique()))})"
             for key, group in grouped if machines[key] > 1] if (machines > 1).any() else []
    notes = [f"train time and peak memory pool runs on different hardware for: {', '.join(mixed)}; compare those "
             "costs with care, or report each machine's runs apart"] if mixed else []
    return labels.tolist(), notes


def _name_columns(final: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each final metric's column in the one-row-per-run table. A run's own task and each forgetting
    probe (`forgetting/<probe>`) keep plain metric names; the rows of their parts (a suite's member
    datasets, the general suite's tasks) are `<task>/<metric>`, so no two rows of a run share a column."""
    run_task = final["run_id"].map(runs.set_index("run_id")["task"])
    is_probe = final["task"].str.startswith(FORGETTING_TASK_PREFIX) & (final["task"].str.count("/") == 1)
    primary = (final["task"] == run_task) | is_probe
    return final.assign(column=final["metric"].where(primary, final["task"] + "/" + final["metric"]))


def select(runs: pd.DataFrame, only: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The runs whose every SELECTABLE key `only` names has one of its values (`{"budget": ["steps100"]}`);
    HarnessError naming a value no run has, with the values there are."""
    for key, values in only.items():
        if key not in SELECTABLE:
            raise HarnessError(f"--only {key}=...: runs cannot be picked by {key!r}; use one of {', '.join(SELECTABLE)}")
        present = sorted(runs[key].unique())
        absent = [v for v in values if v not in present]
        if absent:
            raise HarnessError(f"--only {key}={','.join(values)}: no finished run has {key} {', '.join(absent)}; "
                               f"these have: {', '.join(present)}")
        runs = runs[runs[key].isin(values)]
    return runs


def load_results(results_dir: Path | str, only: Mapping[str, Sequence[str]] | None = None) -> Results:
    """Read a results folder (a sweep's `results_dir`), its finished runs or those `only` picks
    (see `select`). Unreadable or missing part files are left out and named in `problems`; raises
    HarnessError when nothing is left to report."""
    root = Path(results_dir)
    if not (root / "runs").is_dir():
        raise HarnessError(f"{root} has no runs/ folder; pass the results_dir a sweep wrote to (default: results)")
    runs, metrics, bad = ResultStore(root).read(strict=False)
    problems = []
    if bad:
        problems.append(f"skipped unreadable result files: {', '.join(bad)}; delete them and rerun the sweep to recompute those runs")
    metrics, stale = _newest_versions(metrics)
    problems += stale

    runs = select(runs[runs["status"] == "finished"], only or {})
    final = metrics[metrics["step"].isna()]
    with_metrics = set(final["run_id"].unique())  # unique() first: 20 rows a run, and sets of arrow strings are slow
    without = [root / "metrics" / f"{r}.parquet" for r in runs["run_id"] if r not in with_metrics]
    missing = [str(p) for p in without if not p.exists()]  # the unreadable ones are named above
    if missing:
        problems.append(f"finished runs without their metrics part: {', '.join(missing)} missing; "
                        f"delete the matching runs/<run_id>.parquet and rerun the sweep to recompute them")
    runs = runs[runs["run_id"].isin(with_metrics)]
    if runs.empty:
        raise HarnessError(f"no finished runs with metrics in {root}" + "".join(f"; {p}" for p in problems)
                           + ("" if problems else f"; run a sweep first (python -m harness results_dir={root})"))

    final = _name_columns(final, runs)
    values = final.pivot(index="run_id", columns="column", values="value")
    runs = runs.assign(peak_mem_mib=runs["peak_mem_bytes"] / 2**20).join(values, on="run_id").reset_index(drop=True)
    runs["variant"], clashes = variants(runs)
    problems += clashes
    runs["config"] = [m if not v else f"{m} [{v}]" for m, v in zip(runs["method"], runs["variant"])]
    runs["hardware"], mixed_hardware = _hardware(runs)
    problems += mixed_hardware

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
    return Results(runs, curves, higher_is_better, quality, forgetting, problems, root, metrics)
