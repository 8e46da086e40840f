"""Where things live: the config folder, and what the harness keeps outside git (converted models, caches)."""

from __future__ import annotations

import os
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the Hydra config groups (conf/ at the repo root)


def cache_dir() -> Path:
    """`$HARNESS_CACHE_DIR`, else `~/.cache/peft-harness`."""
    root = os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "peft-harness"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
