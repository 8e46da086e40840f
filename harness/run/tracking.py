"""Optional Weights & Biases logging: one wandb run per harness run, grouped by sweep and tagged by
method, model, task and budget. Offline by default, and never prompts for a login (an online run
without credentials is a config error). The run's summary holds what the parquet tables hold: every
final metric row (`<task>/<metric>`, with its stderr and n) and the cost columns of the runs row
(`cost/<column>`); the training curve is logged per step."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from harness.config.run_config import WandbConfig
from harness.core.errors import HarnessError

# runs-table columns logged as `cost/<column>` (plus `status`, `error`, `stop_reason` as they are).
COST_COLUMNS = ("trainable_params", "total_params", "trainable_pct", "adapter_bytes", "peak_mem_bytes",
                "train_time_s", "train_steps", "train_tokens", "tokens_per_s", "eval_time_s")


def check_config(cfg: WandbConfig) -> None:
    """Raise HarnessError when wandb logging cannot start; cheap, so preflight calls it for every job.
    (The mode's values are checked with the other options: harness/config/run_config.py.)"""
    if not cfg.enabled:
        return
    if cfg.mode == "online" and not os.environ.get("WANDB_API_KEY"):
        import wandb

        if not wandb.api.api_key:
            raise HarnessError("wandb.mode=online needs WANDB_API_KEY (or `wandb login`); or use wandb.mode=offline")


def summary_of(row: Mapping[str, Any], metric_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The wandb summary of a run: the same numbers as its runs row and final metric rows."""
    summary: dict[str, Any] = {k: row.get(k) for k in ("status", "error", "stop_reason")}
    summary.update({f"cost/{k}": row[k] for k in COST_COLUMNS if row.get(k) is not None})
    for m in metric_rows:
        if m["step"] is None:
            key = f"{m['task']}/{m['metric']}"
            summary.update({key: m["value"], f"{key}_stderr": m["stderr"], f"{key}_n": m["n"]})
    return summary


class Tracker:
    def __init__(self, cfg: WandbConfig | None, run_id: str, group: str, tags: list[str], config: dict, job_dir: str):
        """`cfg` None: no logging (the ranks of a distributed run other than rank 0)."""
        self.run = None
        if cfg is None or not cfg.enabled:
            return
        check_config(cfg)
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.run = wandb.init(
            project=cfg.project, entity=cfg.entity, mode=cfg.mode, group=group, name=run_id,
            id=run_id, tags=tags, config=config, dir=job_dir, reinit="create_new",
        )

    def log(self, values: Mapping[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(values), step=step)

    def finish(self, row: Mapping[str, Any], metric_rows: Sequence[Mapping[str, Any]]) -> None:
        if self.run is not None:
            self.run.summary.update(summary_of(row, metric_rows))
            self.run.finish(exit_code=0 if row["status"] == "finished" else 1)
