"""Fine-tuning methods: one module per method, registered by name.

Adding a method: write `methods/<name>.py` with a `MethodConfig` subclass and a `Method` subclass
decorated with `@register`, and add `conf/method/<name>.yaml`. Every module in this package is
imported here, so nothing else needs editing.
"""

import importlib
import pkgutil

from methods._core.registry import build, get, names, register

_INFRASTRUCTURE = {"_core", "__main__"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["build", "get", "names", "register"]
