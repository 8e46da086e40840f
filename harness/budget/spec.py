"""Budgets (v2): what a run may spend, in three kinds that one budget file can combine.

* compute: training stops at the first of max_steps / max_tokens / max_time_s / epochs reached;
* parameters: a trainable-parameter target (`target_params`, absolute, or `target_params_pct` of
  the base model); harness/budget/param_budget.py picks each method's size knob to land within
  `param_tolerance` of it, or rejects the run with the reason before anything trains;
* memory: `max_memory_gib`, a peak-memory cap checked after every optimizer step on CUDA (the run
  fails when it is exceeded) and reported against the measured peak on CPU (where the peak is the
  process RSS, which also holds the Python runtime: a report, not a hard check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from harness.core.errors import HarnessError

GIB = 2**30


@dataclass(frozen=True)
class Budget:
    """
    Attributes:
        name: the budget's config name (filed in the runs table).
        max_steps: optimizer steps.
        max_tokens: training tokens (non-padding input tokens, summed over micro-batches).
        max_time_s: wall-clock training time in seconds, evaluation excluded.
        epochs: passes over the training pool (fractions allowed); turned into `epoch_steps`
            once the pool size is known (`for_pool`).
        epoch_steps: optimizer steps that make `epochs` (set by `for_pool`, not by configs).
        target_params: trainable-parameter target, absolute.
        target_params_pct: trainable-parameter target in percent of the base model's parameters.
        param_tolerance: largest relative distance from the target a run may land at.
        max_memory_gib: peak-memory cap in GiB.
    """

    name: str
    max_steps: int | None = None
    max_tokens: int | None = None
    max_time_s: float | None = None
    epochs: float | None = None
    epoch_steps: int | None = None
    target_params: int | None = None
    target_params_pct: float | None = None
    param_tolerance: float = 0.05
    max_memory_gib: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Budget":
        budget = cls(
            cfg["name"], cfg.get("max_steps"), cfg.get("max_tokens"), cfg.get("max_time_s"), cfg.get("epochs"),
            target_params=cfg.get("target_params"), target_params_pct=cfg.get("target_params_pct"),
            param_tolerance=0.05 if cfg.get("param_tolerance") is None else cfg["param_tolerance"],
            max_memory_gib=cfg.get("max_memory_gib"),
        )
        budget.validate()
        return budget

    def validate(self) -> None:
        if all(v is None for v in (self.max_steps, self.max_tokens, self.max_time_s, self.epochs)):
            raise HarnessError(
                f"budget {self.name!r} sets no compute limit; set budget.max_steps, max_tokens, max_time_s or epochs"
            )
        for option, value in (("max_steps", self.max_steps), ("max_tokens", self.max_tokens),
                              ("target_params", self.target_params)):
            if value is not None and value < 1:
                raise HarnessError(f"budget.{option}={value} is impossible; it must be >= 1")
        for option, value in (("max_time_s", self.max_time_s), ("epochs", self.epochs),
                              ("max_memory_gib", self.max_memory_gib)):
            if value is not None and value <= 0:
                raise HarnessError(f"budget.{option}={value} is impossible; it must be > 0")
        if self.target_params_pct is not None and not 0 < self.target_params_pct <= 100:
            raise HarnessError(f"budget.target_params_pct={self.target_params_pct} is impossible; it must be in (0, 100]")
        if self.target_params is not None and self.target_params_pct is not None:
            raise HarnessError("budget sets both target_params and target_params_pct; keep one of them")
        if not 0 < self.param_tolerance < 1:
            raise HarnessError(f"budget.param_tolerance={self.param_tolerance} is invalid; use a fraction in (0, 1), e.g. 0.05")

    @property
    def has_param_target(self) -> bool:
        return self.target_params is not None or self.target_params_pct is not None

    @property
    def max_memory_bytes(self) -> int | None:
        return None if self.max_memory_gib is None else int(self.max_memory_gib * GIB)

    def for_pool(self, n_examples: int, batch_size: int, grad_accum: int) -> "Budget":
        """This budget with `epochs` turned into optimizer steps for a pool of `n_examples`
        (the batch stream drops each epoch's last partial micro-batch, so an epoch is
        floor(n / batch_size) micro-batches)."""
        if self.epochs is None:
            return self
        per_epoch = (n_examples // batch_size) / grad_accum
        if per_epoch <= 0:
            raise HarnessError(f"the training pool ({n_examples} items) is smaller than one batch ({batch_size}); "
                               "lower train.batch_size")
        return replace(self, epoch_steps=max(1, math.ceil(self.epochs * per_epoch)))

    def stop_reason(self, steps: int, tokens: int, elapsed_s: float) -> str | None:
        if self.max_steps is not None and steps >= self.max_steps:
            return "max_steps"
        if self.epoch_steps is not None and steps >= self.epoch_steps:
            return "epochs"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_time_s is not None and elapsed_s >= self.max_time_s:
            return "max_time_s"
        return None

    def planned_steps(self, tokens_per_step: float) -> int | None:
        """Steps the LR schedule spans: the fewest of max_steps, epoch steps and what max_tokens
        allows at the expected tokens per step; None for a time-only budget (the schedule is
        then constant after warmup)."""
        candidates = [s for s in (self.max_steps, self.epoch_steps) if s is not None]
        if self.max_tokens is not None:
            candidates.append(max(1, int(self.max_tokens / max(tokens_per_step, 1.0))))
        return min(candidates) if candidates else None
