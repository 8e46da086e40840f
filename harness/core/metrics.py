"""One measured number, as it lands in the `metrics` table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass
class Metric:
    """A metric value. `version` names the definition ("<name>/v<k>"); bump it whenever the way
    the number is computed changes, so old and new rows are never compared by accident."""

    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    higher_is_better: bool
    version: str
    step: int | None = None

    def row(self) -> dict:
        d = asdict(self)
        d["metric_version"] = d.pop("version")
        return d


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample std / sqrt(n)), as lm-eval reports it."""
    n = len(values)
    if n == 0:
        return float("nan"), None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
