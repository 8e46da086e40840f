"""Learning (`forgetting.target_gain`): every final metric of the run's task is also measured on the
base model with the same items and scoring; `gain_<metric>` = tuned - base (paired by item)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.cache import cached_json
from harness.core.metrics import Metric
from harness.probes.base import evaluate_task, paired_delta, per_item
from harness.tasks.base import Task, TaskData


class TargetGain:
    """The run's own task on the base model, so every final task metric gets `gain_<metric>`."""

    VERSION = "v1"

    def __init__(self, cache_root: Path, task: Task, data: TaskData, max_len: int):
        self.cache_root, self.task, self.data, self.max_len = cache_root, task, data, max_len
        self.before: dict | None = None

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        key = {"model": model_identity, "task": self.task.cfg.as_dict(), "eval": self.data.identity["eval_sha256"],
               "device": device.type, "max_len": self.max_len, "v": f"target_gain/{self.VERSION}"}
        self.before, _ = cached_json(self.cache_root, key,
                                lambda: evaluate_task(self.task, self.data, model, tok, device, self.max_len))

    def measure(self, task_metrics: list[Metric], samples: list[dict]) -> list[Metric]:
        assert self.before is not None, "baseline() must run before the method is applied"
        base = {(r["task"], r["metric"], r["metric_version"]): r for r in self.before["metrics"]}
        rows = []
        for m in task_metrics:
            b = base.get((m.task, m.metric, m.version))
            if b is None or m.step is not None:
                continue
            after, before = per_item(samples, m.task, m.metric), per_item(self.before["samples"], m.task, m.metric)
            if after and after.keys() == before.keys():  # paired by item
                value, se, n = paired_delta(after, before)
            else:  # aggregate rows (e.g. a suite's mean) have no per-item values
                value, se, n = m.value - b["value"], None, m.n
            rows.append(Metric(m.task, f"gain_{m.metric}", value, se, n, m.higher_is_better,
                               f"gain/{self.VERSION}+{m.version}"))
        return rows
