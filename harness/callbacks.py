"""Hydra callback that prints the comparison table when a sweep ends, and the failures with how to
rerun them. It runs in the launching process; with parallel or cluster launchers the jobs ran
elsewhere, so it learns their outcome from the `run.json` marker each job wrote in its folder."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.store import ResultStore
from harness.summary import comparison_table, format_table


def sweep_statuses(sweep_dir: Path) -> dict[str, str]:
    """run_id -> status of every job of a sweep, from the `run.json` marker in each job folder."""
    found = {}
    for marker in sorted(sweep_dir.glob("*/run.json")):
        info = json.loads(marker.read_text())
        found[info["run_id"]] = info["status"]
    return found


def sweep_command(config: DictConfig) -> str:
    """The command line that started this sweep (rerunning it skips every finished run)."""
    overrides = [*config.hydra.overrides.hydra, *config.hydra.overrides.task]
    return shlex.join(["python", "-m", "harness", *overrides])


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness import app

        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = sweep_statuses(sweep_dir)
        store = ResultStore(config.results_dir)
        table = comparison_table(store, statuses)
        print(f"\n=== sweep {config.sweep_name}: {len(statuses)} runs in {sweep_dir} ===")
        print(format_table(table))
        table.to_csv(sweep_dir / "summary.csv", index=False)
        # A job killed before it wrote its row (a cluster preemption) left a "running" marker.
        unfinished = sorted(r for r, s in statuses.items() if s != "finished")
        if unfinished:
            runs, _, _ = store.read(strict=False)
            errors = dict(zip(runs["run_id"], runs["error"]))
            print(f"{len(unfinished)} run(s) did not finish:")
            for run_id in unfinished:
                print(f"  {run_id} [{statuses[run_id]}] {errors.get(run_id) or 'no result row (killed?)'}")
            print(f"Rerun only these: `{sweep_command(config)}` (finished runs are skipped), or one at a time: "
                  f"`python -m harness.results failures {config.results_dir}` prints each run's own command.")
        app.FAILED_RUNS.extend(unfinished)
