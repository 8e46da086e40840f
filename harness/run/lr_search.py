"""Learning-rate fairness (lr_sweep/v1): one method's lr picked on validation data, its cost charged.

With `train.lr_sweep` set to multipliers (e.g. [0.3, 1, 3]), a run trains one candidate per lr =
multiplier x the method's recommended lr (`method.lr`, or `train.lr` when set), each from the same
init and the same data order under the run's budget, and scores each by val_loss/v1 on the
validation split carved from the training pool (harness/run/heldout.py; never the test split).
The lowest loss wins (ties: the smaller lr). The winner's trained model is the run's model (so the
lr it reports was trained exactly once with it), and the search's whole training and validation
time, the winner's included, is the run's `lr_search_time_s`. A candidate whose loss diverges
(RunFailed) scores +inf; the run fails only when every candidate does.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from harness.core.errors import HarnessError, RunFailed

VERSION = "lr_sweep/v1"
T = TypeVar("T")


def grid(base_lr: float, multipliers: Sequence[float]) -> list[float]:
    if any(m <= 0 for m in multipliers):
        raise HarnessError(f"train.lr_sweep={list(multipliers)} must hold positive multipliers of the method's lr")
    return sorted({base_lr * float(m) for m in multipliers})


@dataclass
class SearchResult(Generic[T]):
    lr: float
    fitted: T
    val_losses: dict[float, float] = field(default_factory=dict)
    time_s: float = 0.0

    def record(self) -> str:
        """The grid, each candidate's validation loss and the choice, for the runs table."""
        return json.dumps({"version": VERSION, "grid": sorted(self.val_losses), "chosen": self.lr,
                           "val_loss": {f"{lr:g}": loss for lr, loss in sorted(self.val_losses.items())}})


def search(lrs: Sequence[float], fit: Callable[[float], T], score: Callable[[T], float]) -> SearchResult[T]:
    """Fit every lr, keep the best-scoring fit (lower is better) and drop the others as it goes."""
    start = time.perf_counter()
    best: SearchResult[T] | None = None
    losses: dict[float, float] = {}
    errors: list[str] = []
    for lr in lrs:
        try:
            fitted = fit(lr)
        except RunFailed as exc:
            losses[lr] = math.inf
            errors.append(f"lr={lr:g}: {exc}")
            continue
        losses[lr] = loss = score(fitted)
        if not math.isfinite(loss):
            losses[lr] = math.inf
        if best is None or losses[lr] < losses[best.lr]:
            best = SearchResult(lr, fitted)
    if best is None:
        raise RunFailed(f"every lr of the sweep failed ({'; '.join(errors)})")
    best.val_losses, best.time_s = losses, time.perf_counter() - start
    return best
