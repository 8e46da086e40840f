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

select_best/v1 (`train.select_best`): the run's model is the trainable state at the validation
point with the lowest val_loss among those every `eval_every` steps (step > 0; a tie keeps the
earlier), as HF Trainer's `load_best_model_at_end` with its default `metric_for_best_model`
(the loss, lower is better). The untrained state (step 0) is never kept, and the end of training
is a candidate only when it falls on such a point, as in the Trainer, whose checkpoints are saved
at those steps only; with no point at all the final state stays. Its val_loss rows are unchanged
(every point, the final one included), so the kept step is the lowest of them on the grid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric
from harness.scoring.cross_entropy import target_cross_entropy
from harness.tasks.base import Task, TaskData
from methods._core.base import Method

VAL_LOSS_VERSION = "val_loss/v1"
STEPS_TO_TARGET_VERSION = "cost/steps_to_target/v1"
SELECT_BEST_VERSION = "select_best/v1"


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


class BestState:
    """select_best/v1 (see the module docstring): a copy, on the CPU, of the trainable parameters
    (those that require grad) at the best validation point offered so far."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.step: int | None = None
        self.loss = math.inf
        self.parameters: dict[str, torch.Tensor] = {}

    def offer(self, step: int, loss: float) -> None:
        if loss < self.loss:  # strictly lower: a tie keeps the earlier state; NaN never wins
            self.step, self.loss = step, loss
            self.parameters = {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters()
                               if p.requires_grad}

    def restore(self) -> int | None:
        """Put the kept parameters back into the model; the kept step, or None when nothing was kept."""
        if self.step is not None:
            with torch.no_grad():
                for name, param in self.model.named_parameters():
                    if name in self.parameters:
                        param.copy_(self.parameters[name])
        return self.step

    def state(self) -> dict:
        """What an in-run checkpoint carries, so a resumed run keeps the same best state."""
        return {"step": self.step, "loss": self.loss, "parameters": self.parameters}

    def load(self, state: dict) -> None:
        self.step, self.loss, self.parameters = state["step"], state["loss"], state["parameters"]


class Curve:
    """Validation loss at step 0, every `every` steps and at the end (the training loop's on_step
    calls it; that time is not training time). With `best`, every point after step 0 on the
    `every` grid is offered to it (select_best/v1)."""

    def __init__(self, evaluate: Callable[[], float], every: int, best: BestState | None = None):
        self.evaluate, self.every, self.best = evaluate, every, best
        self.points: list[tuple[int, float]] = []

    def start(self) -> None:
        if self.every:
            self.points.append((0, self.evaluate()))

    def step(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self.points.append((step, self.evaluate()))
            if self.best is not None:
                self.best.offer(step, self.points[-1][1])

    def kept_loss(self) -> float:
        """The validation loss of the state the run keeps: the best point's under select_best, else the last."""
        if self.best is not None and self.best.step is not None:
            return self.best.loss
        return self.points[-1][1]

    def finish(self, step: int) -> float:
        """The final validation loss (measured now unless the last step already was)."""
        if not self.points or self.points[-1][0] != step:
            self.points.append((step, self.evaluate()))
        return self.points[-1][1]


def check_select_best(train, method) -> None:
    """HarnessError when `train.select_best` cannot do what it says for this run."""
    if not train.select_best:
        return
    if not train.eval_every:
        raise HarnessError("train.select_best=true keeps the best of the validation points every train.eval_every "
                           "steps, and train.eval_every=0: set train.eval_every (e.g. 100) or drop train.select_best")
    if type(method).checkpoint_state is not Method.checkpoint_state:
        raise HarnessError(f"train.select_best keeps the trainable parameters of the best validation point, and method "
                           f"{method.name} carries more state from step to step (its checkpoint_state); "
                           "drop train.select_best for it")


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
