"""Name -> method class. A method registers itself with `@register`; `build` validates options."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from harness.errors import HarnessError
from methods.base import Method, config_fields

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in _REGISTRY:
        raise RuntimeError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[Method]:
    if name not in _REGISTRY:
        raise HarnessError(f"unknown method {name!r}; valid methods: {', '.join(names())} (choose with method=NAME)")
    return _REGISTRY[name]


def build(options: Mapping[str, Any]) -> Method:
    """Build a method from its config mapping (the `method` node of the run config)."""
    options = dict(options)
    cls = get(str(options.get("name")))
    valid = config_fields(cls.config_class)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise HarnessError(
            f"method {cls.name!r} has no option {', '.join(unknown)}; valid options: {', '.join(valid)}"
        )
    for field in dataclasses.fields(cls.config_class):
        # yaml lists arrive as ListConfig/list; dataclass defaults for sequences are tuples.
        if isinstance(options.get(field.name), list):
            options[field.name] = tuple(options[field.name])
    return cls(cls.config_class(**options))
