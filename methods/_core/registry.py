"""Name -> method class. A method registers itself with `@register`; `build` validates options."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from harness.core.errors import HarnessError
from harness.core.registry import Registry
from methods._core.base import Method, config_fields

_METHODS: Registry[Method] = Registry("method")
register, names, get = _METHODS.register, _METHODS.names, _METHODS.get


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
