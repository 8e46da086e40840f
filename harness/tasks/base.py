"""What a task is: where its items come from, how an item becomes training text, how to score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.metrics import Metric

if TYPE_CHECKING:
    from harness.data.layout import LocalDataset


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
    """What a task's evaluate() gets. Tasks append one dict per item x metric to `samples`
    (keys: item_id, metric, value, and optionally prediction, reference); the run files them in the
    `samples` table when `eval.log_samples` is on."""

    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_len: int
    samples: list[dict] = field(default_factory=list)
    # Provenance the evaluation adds to the run's data identity (data_json), e.g. lm-eval's version
    # and request hashes; never part of the run id, which is fixed before evaluation.
    identity: dict[str, Any] = field(default_factory=dict)

    def add_samples(self, task: str, metric: str, values: list[float], predictions: list[str | None] | None = None,
                    references: list[str | None] | None = None, item_ids: list[str] | None = None) -> None:
        n = len(values)
        ids = item_ids or [str(i) for i in range(n)]
        preds = predictions or [None] * n
        refs = references or [None] * n
        self.samples.extend(
            {"task": task, "item_id": i, "metric": metric, "value": float(v), "prediction": p, "reference": r}
            for i, v, p, r in zip(ids, values, preds, refs)
        )


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

    def local_datasets(self) -> list[LocalDataset]:
        """The files this task's `local` source reads under data.dir, with their parsers and the hub
        rows that make them (`python -m harness.data fetch` writes them, `check` verifies them)."""
        raise NotImplementedError(f"task {self.name} does not declare its local files (Task.local_datasets)")

    def for_encoder(self) -> Task | None:
        """This task scored through a classification head on an encoder (`model.kind: encoder`), or
        None when it needs a causal language model (generation, likelihood of free text)."""
        return None
