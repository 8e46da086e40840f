"""Optional Weights & Biases logging: one wandb run per harness run, grouped by sweep. Offline by
default, and never prompts for a login (an online run without credentials is a config error)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from harness.errors import HarnessError


class Tracker:
    def __init__(self, cfg: Mapping[str, Any], run_id: str, group: str, tags: list[str], config: dict, job_dir: str):
        self.run = None
        if not cfg["enabled"]:
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        if cfg["mode"] == "online" and not (os.environ.get("WANDB_API_KEY") or wandb.api.api_key):
            raise HarnessError("wandb.mode=online needs WANDB_API_KEY (or `wandb login`); or use wandb.mode=offline")
        self.run = wandb.init(
            project=cfg["project"], entity=cfg.get("entity"), mode=cfg["mode"], group=group, name=run_id,
            id=run_id, tags=tags, config=config, dir=job_dir, reinit="create_new",
        )

    def log(self, values: Mapping[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(values), step=step)

    def finish(self, summary: Mapping[str, Any], failed: bool) -> None:
        if self.run is not None:
            self.run.summary.update(dict(summary))
            self.run.finish(exit_code=1 if failed else 0)
