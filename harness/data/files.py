"""Atomic writes into a data dir: content goes to a temp file beside its target and is renamed into
place, so a reader never sees half a file and an interrupted fetch leaves only temp files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_beside(target: Path) -> Path:
    """A new empty hidden temp file in `target`'s folder (created if needed), with `target`'s suffix
    (parsers that go by suffix read it as they will read the target)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".partial{target.suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the data from the other users of a shared dir
    return Path(tmp)


def write_atomic(target: Path, content: bytes) -> None:
    tmp = temp_beside(target)
    try:
        tmp.write_bytes(content)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
