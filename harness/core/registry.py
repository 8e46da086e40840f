"""Name -> class registries (methods, tasks): a class registers itself with `@registry.register`
under its `name`; asking for an unknown name is a one-line error that lists the valid ones."""

from __future__ import annotations

from typing import Generic, TypeVar

from harness.core.errors import HarnessError

T = TypeVar("T")


class Registry(Generic[T]):
    """The classes of one kind (`kind`, e.g. "method"), chosen on the command line with `<kind>=NAME`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        if name not in self._classes:
            raise HarnessError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())} "
                               f"(choose with {self.kind}=NAME)")
        return self._classes[name]
