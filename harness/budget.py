"""Compute budgets (v1): a run trains until the first of max_steps / max_tokens / max_time_s is hit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.errors import HarnessError


@dataclass(frozen=True)
class Budget:
    """
    Attributes:
        name: the budget's config name (filed in the runs table).
        max_steps: optimizer steps.
        max_tokens: training tokens (non-padding input tokens, summed over micro-batches).
        max_time_s: wall-clock training time in seconds, evaluation excluded.
    """

    name: str
    max_steps: int | None = None
    max_tokens: int | None = None
    max_time_s: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Budget":
        budget = cls(cfg["name"], cfg.get("max_steps"), cfg.get("max_tokens"), cfg.get("max_time_s"))
        budget.validate()
        return budget

    def validate(self) -> None:
        if self.max_steps is None and self.max_tokens is None and self.max_time_s is None:
            raise HarnessError(f"budget {self.name!r} sets no limit; set budget.max_steps, max_tokens or max_time_s")
        if self.max_steps is not None and self.max_steps < 1:
            raise HarnessError(f"budget.max_steps={self.max_steps} is impossible; it must be >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise HarnessError(f"budget.max_tokens={self.max_tokens} is impossible; it must be >= 1")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise HarnessError(f"budget.max_time_s={self.max_time_s} is impossible; it must be > 0")

    def stop_reason(self, steps: int, tokens: int, elapsed_s: float) -> str | None:
        if self.max_steps is not None and steps >= self.max_steps:
            return "max_steps"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_time_s is not None and elapsed_s >= self.max_time_s:
            return "max_time_s"
        return None

    def planned_steps(self, tokens_per_step: float) -> int | None:
        """Steps the LR schedule spans: max_steps, else what max_tokens allows at the expected
        tokens per step; None for a time-only budget (the schedule is then constant after warmup)."""
        candidates = []
        if self.max_steps is not None:
            candidates.append(self.max_steps)
        if self.max_tokens is not None:
            candidates.append(max(1, int(self.max_tokens / max(tokens_per_step, 1.0))))
        return min(candidates) if candidates else None
