"""Tasks: one module per task, registered by name, each configured by `conf/task/<name>.yaml`."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from harness.errors import HarnessError
from harness.tasks.base import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(cfg: Mapping[str, Any]) -> Task:
    name = cfg.get("name")
    if name not in _REGISTRY:
        raise HarnessError(f"unknown task {name!r}; valid tasks: {', '.join(names())} (choose with task=NAME)")
    return _REGISTRY[name](cfg)


def from_conf(name: str) -> Task:
    """The task `conf/task/<name>.yaml` configures, read as plain yaml (as a pool naming a task reads it)."""
    import yaml

    from harness.paths import CONF_DIR

    return build(yaml.safe_load((CONF_DIR / "task" / f"{name}.yaml").read_text()))


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
