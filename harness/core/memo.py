"""Memoisation for the span of one sweep's preflight.

The preflight validates every job of a sweep, and most jobs share their task data, probes and
model: a 10,000-job sweep of seeds would load the same files 10,000 times. Inside `preflight_scope()`,
`memoized(kind, key, compute)` computes each distinct (kind, key) once and hands the same object to
every later caller; outside it, `compute()` runs every time, so a run, a test or a long-lived
process never sees a value cached from an earlier state of the files.

Keys are the complete inputs of `compute` (configs, paths), compared by canonical JSON. The values
are shared, so the caller must not mutate them: the preflight only validates and computes run ids,
and throws its prepared runs away.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from harness.core.hashing import canonical_json

T = TypeVar("T")

_ACTIVE: dict[tuple[str, str], Any] | None = None


@contextmanager
def preflight_scope() -> Iterator[None]:
    """Memoise inside this block (nested blocks share the outer one's table); forget on exit."""
    global _ACTIVE
    outer = _ACTIVE
    _ACTIVE = {} if outer is None else outer
    try:
        yield
    finally:
        _ACTIVE = outer


def memoized(kind: str, key: Any, compute: Callable[[], T]) -> T:
    """`compute()`, once per distinct (kind, key) inside a preflight scope; every time outside one.
    An exception is not memoised: it propagates, and the preflight stops at it."""
    if _ACTIVE is None:
        return compute()
    entry = (kind, canonical_json(key))
    if entry not in _ACTIVE:
        _ACTIVE[entry] = compute()
    return _ACTIVE[entry]
