"""Where a number came from: package versions and the code's git state."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "datasets", "lm_eval", "hydra-core", "accelerate", "pandas", "pyarrow")
REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    from harness import __version__

    found["harness"] = __version__
    return found


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit SHA or "unknown", dirty). Dirty means tracked files differ from the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
