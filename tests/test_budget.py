from __future__ import annotations

import pytest

from harness.budget import Budget
from harness.errors import HarnessError


def test_first_limit_wins():
    b = Budget("x", max_steps=10, max_tokens=1000, max_time_s=5.0)
    assert b.stop_reason(3, 100, 1.0) is None
    assert b.stop_reason(10, 100, 1.0) == "max_steps"
    assert b.stop_reason(3, 1000, 1.0) == "max_tokens"
    assert b.stop_reason(3, 100, 5.0) == "max_time_s"


def test_planned_steps():
    assert Budget("x", max_steps=50).planned_steps(500) == 50
    assert Budget("x", max_tokens=10_000).planned_steps(500) == 20
    assert Budget("x", max_steps=50, max_tokens=10_000).planned_steps(500) == 20
    assert Budget("x", max_time_s=60).planned_steps(500) is None


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "sets no limit"),
    ({"max_steps": 0}, "max_steps=0 is impossible"),
    ({"max_tokens": -5}, "max_tokens=-5 is impossible"),
    ({"max_time_s": 0}, "max_time_s=0 is impossible"),
])
def test_impossible_budgets(kwargs, needle):
    with pytest.raises(HarnessError, match=needle):
        Budget("x", **kwargs).validate()
