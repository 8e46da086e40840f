"""The `Probe` protocol, and what the probes share: a task's evaluation as plain data (cacheable as
JSON) and item-paired deltas between the tuned and the base model."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.metrics import Metric, mean_and_stderr
from harness.tasks.base import EvalContext, Task, TaskData


class Probe(Protocol):
    """One forgetting probe: `baseline` on the base model before the method is applied, `measure` on
    the tuned model after training, as metric rows."""

    name: str

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict,
                 device: torch.device) -> None: ...

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]: ...


def evaluate_task(task: Task, data: TaskData, model: nn.Module, tok: PreTrainedTokenizerBase,
                  device: torch.device, max_len: int) -> dict:
    """A task's own evaluation as plain data: its metric rows and per-item samples."""
    ctx = EvalContext(model, tok, device, max_len)
    return {"metrics": [m.row() for m in task.evaluate(ctx, data)], "samples": ctx.samples}


def per_item(samples: list[dict], task: str, metric: str) -> dict[str, float]:
    return {s["item_id"]: s["value"] for s in samples if s["task"] == task and s["metric"] == metric}


def paired_delta(after: dict[str, float], before: dict[str, float]) -> tuple[float, float | None, int]:
    """Mean and stderr of after - before over the items both measured."""
    common = [i for i in after if i in before]
    mean, se = mean_and_stderr([after[i] - before[i] for i in common])
    return mean, se, len(common)
