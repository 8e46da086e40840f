"""Test-only fault points, so tests can break a real sweep at a named moment instead of guessing
with timers. `HARNESS_TEST_KILL_AT=NAME[:N]` makes the process SIGKILL itself the N-th time
(default: the first) it passes `fault_point(NAME)`; `HARNESS_TEST_RAISE_AT=NAME[:N]` raises a
RuntimeError there instead (an unexpected bug inside one run). Points: mid_train (after an
optimizer step), mid_checkpoint (an in-run checkpoint's temp file written, not yet renamed),
mid_eval (task scored, forgetting probe not yet), mid_write (metrics part written, runs row not
yet), mid_part (a part's temp file written, not yet renamed), mid_compact (a compacted file written and
one merged part deleted, the others not yet). In a run over several processes,
`HARNESS_TEST_FAULT_RANK=R` limits the fault to rank R. Unset: two dict lookups."""

from __future__ import annotations

import os
import signal
from collections import Counter

_passed: Counter[tuple[str, str]] = Counter()


def _due(variable: str, name: str) -> bool:
    target, _, nth = os.environ.get(variable, "").partition(":")
    if target != name or os.environ.get("HARNESS_TEST_FAULT_RANK", os.environ.get("RANK", "0")) != os.environ.get("RANK", "0"):
        return False
    _passed[variable, name] += 1
    return _passed[variable, name] == int(nth or 1)


def fault_point(name: str) -> None:
    if _due("HARNESS_TEST_KILL_AT", name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due("HARNESS_TEST_RAISE_AT", name):
        raise RuntimeError(f"injected failure at {name} (HARNESS_TEST_RAISE_AT)")
