"""Hydra callback that prints the comparison table when a sweep ends."""

from __future__ import annotations

import json
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


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness import app

        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = sweep_statuses(sweep_dir)
        table = comparison_table(ResultStore(config.results_dir), statuses)
        failed = sorted(r for r, s in statuses.items() if s == "failed")
        print(f"\n=== sweep {config.sweep_name}: {len(statuses)} runs in {sweep_dir} ===")
        print(format_table(table))
        table.to_csv(sweep_dir / "summary.csv", index=False)
        if failed:
            print(f"{len(failed)} run(s) failed: {', '.join(failed)}; see the `error` column of the runs table. "
                  "Rerunning the same command retries only runs that did not finish.")
        app.FAILED_RUNS.extend(failed)
