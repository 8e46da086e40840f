"""The real run that the scale benchmarks copy: one finished tiny-random-llama run, made by the real
CLI on the vendored test data when no results folder is given, read back as plain Python values
(timestamps as datetimes, NaN as None) ready for ResultStore.write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
TINY = ["model=tiny-random-llama", "budget=smoke", "task.n_eval=2", "eval.latency_tokens=0",
        "forgetting.probes=[general_text]", "forgetting.target_gain=false"]


def make(results: Path, overrides: list[str]) -> Path:
    """`results` with one tiny real run in it (made now, ~40 s, unless it is there already)."""
    if not (results / "runs").is_dir():
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.setdefault("HARNESS_DATA_DIR", str(REPO / "tests" / "data"))
        print("making the template: one tiny real run ...", flush=True)
        proc = subprocess.run([sys.executable, "-m", "harness", f"results_dir={results}", *overrides],
                              cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"the template run failed:\n{proc.stderr[-3000:]}")
    return results


def finished_run(results: Path) -> tuple[dict, pd.DataFrame]:
    """The first finished runs row of `results` (plain values) and that run's metric rows."""
    from harness.store.result_store import ResultStore

    runs, metrics, _ = ResultStore(results).read()
    done = runs[runs["status"] == "finished"]
    if done.empty:
        sys.exit(f"{results} holds no finished run to copy")
    row = plain_row(done.iloc[0].to_dict())
    return row, metrics[metrics["run_id"] == row["run_id"]].drop(columns="run_id")


def plain_row(row: dict) -> dict:
    return {k: _plain(v) for k, v in row.items()}


def _plain(value):
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    try:
        return None if value != value else value  # NaN -> None
    except (TypeError, ValueError):
        return value
