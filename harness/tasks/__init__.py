"""Tasks: one module per task, registered by name, each configured by `conf/task/<name>.yaml`."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from harness.core.registry import Registry
from harness.tasks.base import Task

_TASKS: Registry[Task] = Registry("task")
register, names = _TASKS.register, _TASKS.names


def build(cfg: Mapping[str, Any]) -> Task:
    return _TASKS.get(cfg.get("name"))(cfg)


def from_conf(name: str) -> Task:
    """The task `conf/task/<name>.yaml` configures, read as plain yaml (as a pool naming a task reads it)."""
    import yaml

    from harness.core.paths import CONF_DIR

    return build(yaml.safe_load((CONF_DIR / "task" / f"{name}.yaml").read_text()))


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in {"base", "prompting", "math_answers"}:
        importlib.import_module(f"{__name__}.{_module.name}")
