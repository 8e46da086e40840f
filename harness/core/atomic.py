"""Whole files or none: every file the harness must never leave half-written (result parts,
checkpoints) is written to a temp file in its own folder, flushed to disk, then renamed over its path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from harness.core.faults import fault_point


def write_atomic(path: Path, write: Callable[[IO[bytes]], None], temp_prefix: str, fault: str) -> None:
    """`write` the file into `<folder>/<temp_prefix>*.tmp`, fsync, rename over `path`: readers see
    the whole file or none of it. A kill before the rename leaves that temp file (its owner's clean-up
    globs the prefix); `fault` names the fault point between the fsync and the rename (tests kill there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        fault_point(fault)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
