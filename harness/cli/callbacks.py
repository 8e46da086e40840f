"""Hydra callback in the launching process: a sweep's first console line (its size, launcher and
folder) and its start time for the jobs' progress counts (harness/cli/console.py); when it ends, the
comparison table and the failures with how to rerun them. With parallel or cluster launchers the
jobs ran elsewhere, so it learns their outcome from the `run.json` marker each job wrote in its folder.
Last, it compacts the results folder when the sweep left many part files."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.cli.console import LOG_NAME, SWEEP_STARTED_ENV, sweep_statuses
from harness.cli.preflight import SWEEP_JOBS_ENV
from harness.cli.summary import comparison_table, format_table
from harness.core.errors import HarnessError
from harness.store.result_store import ResultStore, compact_parts


def sweep_command(config: DictConfig) -> str:
    """The command line that started this sweep (rerunning it skips every finished run)."""
    overrides = [*config.hydra.overrides.hydra, *config.hydra.overrides.task]
    return shlex.join(["python", "-m", "harness", *overrides])


def launcher_text(launcher: DictConfig) -> str:
    """`joblib launcher, n_jobs=2`, `basic launcher`: how the jobs will run."""
    name = str(launcher.get("_target_", "")).rsplit(".", 1)[-1].removesuffix("Launcher").lower() or "unknown"
    return f"{name} launcher" + (f", n_jobs={launcher.n_jobs}" if launcher.get("n_jobs") else "")


def compact_results(store: ResultStore) -> None:
    """At the end of a sweep, merge the part files left in the results folder once there are a
    quarter of HARNESS_COMPACT_PARTS (64 by default; writers merge at the full number, see
    harness/store/result_store.py): the next read, query and skip-done stay fast."""
    try:
        merged = store.compact_if_due((compact_parts() + 3) // 4)
    except (OSError, HarnessError) as exc:  # the sweep's results are stored: say so and go on
        print(f"warning: compaction of {store.root} skipped ({exc}); `python -m harness.results compact "
              f"{store.root}` retries it")
        return
    if merged:
        print(f"results: merged {merged['runs'][0]} runs file(s) of {store.root} into one "
              f"(`python -m harness.results compact` merges every file)")


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Set before the launcher starts any job: parallel workers inherit it with the environment.
        os.environ[SWEEP_STARTED_ENV] = str(time.time())
        jobs = os.environ.get(SWEEP_JOBS_ENV, "?")
        print(f"[sweep {config.sweep_name}] {jobs} jobs ({launcher_text(config.hydra.launcher)}) in "
              f"{config.hydra.sweep.dir}; each job's full output goes to <job folder>/{LOG_NAME}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness.cli import app

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
            runs, _ = store.read_runs(["run_id", "error"], strict=False)
            errors = dict(zip(runs["run_id"], runs["error"]))
            print(f"{len(unfinished)} run(s) did not finish:")
            for run_id in unfinished:
                print(f"  {run_id} [{statuses[run_id]}] {errors.get(run_id) or 'no result row (killed?)'}")
            print(f"Rerun only these: `{sweep_command(config)}` (finished runs are skipped), or one at a time: "
                  f"`python -m harness.results failures {config.results_dir}` prints each run's own command.")
        app.FAILED_RUNS.extend(unfinished)
        compact_results(store)
