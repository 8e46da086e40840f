"""General text (WikiText-2 test by default, `forgetting.general_text`'s sources): what the
general-text forgetting probe and calibration on general text read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.data.sources import first_available, hub_loader, read_local


def general_text(hub: Mapping[str, Any], local_file: str, data_cfg: Mapping[str, Any],
                 purpose: str = "the general-text forgetting probe") -> tuple[str, str]:
    """(source, text) of the general text (`forgetting.general_text`'s `hub` and `local_file`) from
    the first source in `data_cfg["order"]` that works."""
    loaders = {
        "hub": lambda: "".join(r["text"] for r in hub_loader(hub["path"], hub["name"], hub["split"])()),
        "local": lambda: read_local(data_cfg.get("dir"), local_file, lambda path: path.read_text(encoding="utf-8")),
    }
    return first_available(purpose, loaders, list(data_cfg["order"]))
