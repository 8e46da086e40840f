"""Tasks: one module per task, registered by name, each configured by `conf/task/<name>.yaml`."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from harness.core.registry import Registry
from harness.tasks.base import Task

_TASKS: Registry[Task] = Registry("task")
register, names, get = _TASKS.register, _TASKS.names, _TASKS.get


def build(options: Mapping[str, Any]) -> Task:
    """The task the `task` node of a run config names (or the class its `via` names: `lm_eval` runs
    any lm-eval task by its own name), its options typed and validated by its `config_class` (the
    first bad option: one HarnessError line)."""
    return get(options.get("via") or options.get("name")).of(options)


def from_conf(name: str) -> Task:
    """The task `conf/task/<name>.yaml` configures, read as plain yaml (as a pool naming a task reads it)."""
    import yaml

    from harness.core.paths import CONF_DIR

    return build(yaml.safe_load((CONF_DIR / "task" / f"{name}.yaml").read_text()))


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in {"base", "prompting", "math_answers"}:
        importlib.import_module(f"{__name__}.{_module.name}")
