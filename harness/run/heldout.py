"""A validation split carved from the training pool, never from the test split, for the lr sweep
and for learning curves (validation loss every `train.eval_every` steps, steps-to-target).

The split is the `n` training items with the smallest content hash: deterministic, independent of
the pool's order and of every seed, so all methods and seeds validate on the same items; they leave
the training pool. Its size and SHA-256 join the run's data identity (and so its run id).

val_loss/v1: teacher-forced cross-entropy (harness/scoring/cross_entropy.py) of the items' training targets
given their prompts, in nats per target token, pooled over the split.

steps_to_target/v1: the first evaluated step at which the validation loss has made `fraction` of
its total improvement, loss(s) <= loss(0) - fraction * (loss(0) - loss(final)); undefined (no row)
when the loss did not improve. Its resolution is `eval_every` steps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric
from harness.scoring.cross_entropy import target_cross_entropy
from harness.tasks.base import Task, TaskData

VAL_LOSS_VERSION = "val_loss/v1"
STEPS_TO_TARGET_VERSION = "cost/steps_to_target/v1"


def carve(data: TaskData, n: int) -> tuple[TaskData, list[dict]]:
    """`data` without `n` of its training items, and those items (the validation split); the
    split's size and hash join `identity["validation"]`."""
    if not 0 < n < len(data.train):
        raise HarnessError(f"train.val_items={n} must be between 1 and the training pool size - 1 ({len(data.train) - 1})")
    ranked = sorted(range(len(data.train)), key=lambda i: hash_object(data.train[i], 64))
    held = set(ranked[:n])
    val = [data.train[i] for i in ranked[:n]]  # in hash order: the split and its hash ignore the pool's order
    rest = [x for i, x in enumerate(data.train) if i not in held]
    identity = {**data.identity, "validation": {"n": n, "sha256": hash_object(val, 64), "from": "train",
                                                 "definition": VAL_LOSS_VERSION}}
    return dataclasses.replace(data, train=rest, identity=identity), val


def val_loss(model: nn.Module, tok, task: Task, items: list[dict], batch_size: int, max_len: int,
             device: torch.device) -> float:
    """val_loss/v1 of `items` (see the module docstring)."""
    scored = target_cross_entropy(model, tok, [task.training_pair(x) for x in items], batch_size, max_len, device)
    tokens = sum(n for _, n in scored)
    return sum(nll for nll, _ in scored) / max(tokens, 1)


class Curve:
    """Validation loss at step 0, every `every` steps and at the end (the training loop's on_step
    calls it; that time is not training time)."""

    def __init__(self, evaluate: Callable[[], float], every: int):
        self.evaluate, self.every = evaluate, every
        self.points: list[tuple[int, float]] = []

    def start(self) -> None:
        if self.every:
            self.points.append((0, self.evaluate()))

    def step(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self.points.append((step, self.evaluate()))

    def finish(self, step: int) -> float:
        """The final validation loss (measured now unless the last step already was)."""
        if not self.points or self.points[-1][0] != step:
            self.points.append((step, self.evaluate()))
        return self.points[-1][1]


def steps_to_target(points: list[tuple[int, float]], fraction: float) -> int | None:
    """steps_to_target/v1 (see the module docstring)."""
    if len(points) < 2 or points[0][0] != 0:
        return None
    first, final = points[0][1], points[-1][1]
    if final >= first:
        return None
    threshold = first - fraction * (first - final)
    return next(step for step, loss in points if loss <= threshold)


def curve_metrics(points: list[tuple[int, float]], fraction: float, task: str, n_items: int) -> list[Metric]:
    rows = [Metric(task, "val_loss", loss, None, n_items, False, VAL_LOSS_VERSION, step) for step, loss in points]
    reached = steps_to_target(points, fraction)
    if reached is not None:
        rows.append(Metric("cost", "steps_to_target", float(reached), None, len(points), False, STEPS_TO_TARGET_VERSION))
    return rows
