"""`python -m harness.results query`: runs rows filtered, chosen columns, final metric values joined,
as CSV or a markdown table. Only the columns asked for are read (column projection)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from harness.core.errors import HarnessError
from harness.store.record import RUNS_SCHEMA
from harness.store.result_store import ResultStore

FILTERS = ("method", "model", "task", "budget", "status", "sweep")
STATUSES = ("finished", "failed")
DEFAULT_COLUMNS = ("run_id", "status", "method", "model", "task", "budget", "seed", "lr")
SORT_KEYS = ("method", "model", "task", "budget", "seed", "run_id")
FORMATS = ("csv", "markdown")
_SHOWN_VALUES = 12  # known values listed in an error


@dataclass
class Query:
    filters: dict[str, list[str]] = field(default_factory=dict)  # column -> accepted values
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    metrics: list[str] = field(default_factory=list)  # `task/metric`, or `metric` on the run's own task


def names(text: str | None) -> list[str]:
    """`a,b , c` -> [a, b, c]."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _listed(values) -> str:
    values = sorted({str(v) for v in values})
    more = f", ... ({len(values)} in all)" if len(values) > _SHOWN_VALUES else ""
    return ", ".join(values[:_SHOWN_VALUES]) + more


def _check(query: Query) -> None:
    unknown = [c for c in query.columns if c not in RUNS_SCHEMA.names]
    if unknown:
        raise HarnessError(f"unknown column {unknown[0]!r} in --columns; runs columns are: {', '.join(RUNS_SCHEMA.names)}")
    if not query.columns:
        raise HarnessError("--columns names no column; e.g. --columns run_id,method,seed")
    bad_status = [s for s in query.filters.get("status", []) if s not in STATUSES]
    if bad_status:
        raise HarnessError(f"--status {bad_status[0]!r} is not a run status; use {' or '.join(STATUSES)}")


def run_query(store: ResultStore, query: Query) -> tuple[pd.DataFrame, list[str]]:
    """(the table, unreadable files left out)."""
    _check(query)
    wanted = list(dict.fromkeys([*query.columns, *query.filters, *SORT_KEYS, "run_id", "task"]))
    if query.metrics:
        runs, metrics, bad = store.read(strict=False, columns=wanted)
    else:
        (runs, bad), metrics = store.read_runs(wanted, strict=False), None
    every = runs
    for column, values in query.filters.items():
        known = set(every[column].dropna())
        missing = [v for v in values if column != "status" and v not in known]
        if missing:  # a typo, most likely: say what there is
            raise HarnessError(f"--{column} {missing[0]!r} matches no run in {store.root}; "
                               f"{column} values there: {_listed(known) or '(none)'}")
        runs = runs[runs[column].isin(values)]
    table = runs.sort_values(list(SORT_KEYS)).reset_index(drop=True)
    shown = table[query.columns].copy()
    for spec in query.metrics:
        shown[spec] = table["run_id"].map(_metric_values(metrics, every, spec, store.root)).to_numpy()
    return shown, bad


def _metric_values(metrics: pd.DataFrame, runs: pd.DataFrame, spec: str, root) -> pd.Series:
    """run_id -> final value of `spec`: `task/metric`, or a bare `metric` on each run's own task."""
    final = metrics[metrics["step"].isna()]
    task, _, name = spec.rpartition("/")
    rows = final[final["metric"] == name]
    rows = rows[rows["task"] == task] if task else rows.merge(runs[["run_id", "task"]], on=["run_id", "task"])
    if rows.empty:
        known = final["task"] + "/" + final["metric"]
        same_name = known[final["metric"] == name]
        if not task and len(same_name):  # measured, but never on the run's own task
            raise HarnessError(f"--metric {spec!r} is on no run's own task; name the task: {_listed(same_name)}")
        raise HarnessError(f"--metric {spec!r} matches no final metric in {root}; metrics there: {_listed(known) or '(none)'}")
    return rows.drop_duplicates("run_id").set_index("run_id")["value"]


def render(table: pd.DataFrame, fmt: str) -> str:
    """CSV (every digit) or a markdown table (strings as they are: run ids stay text)."""
    if fmt == "csv":
        return table.to_csv(index=False)
    cells = table.astype(object).where(table.notna(), "")  # empty cells, not `nan`
    return cells.to_markdown(index=False, disable_numparse=True) + "\n"
