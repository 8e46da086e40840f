"""The checksum manifest of a data dir (`checksums.json`): per file its sha256, size, the source it
was fetched from and when. `fetch` merges its files into it; `check` compares files against it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.hashing import hash_file
from harness.data.files import write_atomic

MANIFEST = "checksums.json"
FORMAT = "harness-data-checksums/v1"


def read_manifest(root: Path) -> dict[str, dict]:
    """relative path -> entry; empty when the data dir has no manifest (e.g. one copied by hand)."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{path} is not a checksum manifest ({type(exc).__name__}: {exc}); "
                           f"delete it and fetch again: python -m harness.data fetch --to {root}") from None


def entry(path: Path, source: str) -> dict:
    return {"sha256": hash_file(path), "bytes": path.stat().st_size, "source": source,
            "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def record(root: Path, entries: dict[str, dict]) -> None:
    """Merge `entries` into the manifest (theirs replace older entries of the same files)."""
    files = {**read_manifest(root), **entries}
    body = {"format": FORMAT, "files": dict(sorted(files.items()))}
    write_atomic(root / MANIFEST, (json.dumps(body, indent=1) + "\n").encode("utf-8"))


def mismatch(path: Path, recorded: dict | None) -> str | None:
    """Why `path` is not the file the manifest recorded (size, then sha256), or None."""
    if recorded is None:
        return None
    if path.stat().st_size != recorded["bytes"]:
        return f"{path.stat().st_size} bytes, the manifest says {recorded['bytes']}"
    if hash_file(path) != recorded["sha256"]:
        return "sha256 differs from the manifest"
    return None
