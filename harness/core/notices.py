"""One-line notices on the console, each printed once per process: the preflight prepares every job
of a sweep, and the run prepares its own again, so the same notice would otherwise repeat."""

from __future__ import annotations

_SHOWN: set[str] = set()


def notice_once(line: str) -> None:
    if line not in _SHOWN:
        _SHOWN.add(line)
        print(line, flush=True)
