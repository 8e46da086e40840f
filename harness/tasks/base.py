"""What a task is: where its items come from, how an item becomes training text, how to score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.metrics import Metric


@dataclass
class TaskData:
    """Items a run uses. `name` is the task name results are filed under: a fallback source that is
    not the official split gets its own name, so its numbers are never mixed with published ones."""

    name: str
    train: list[dict]
    eval: list[dict]
    identity: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_len: int


class Task:
    name: str

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        raise NotImplementedError

    def training_pair(self, item: dict) -> tuple[str, str]:
        """(prompt, target) text; the loss is taken on the target only."""
        raise NotImplementedError

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        raise NotImplementedError
