"""Type and range rules of options, and the first option of a config that breaks one.

A value of the wrong type or out of range (`seed=abc`, `task.n_eval=-3`) is one line naming the
option, the bad value and what is allowed, instead of a traceback deep in a run or a silently
different run. The rules themselves sit on the fields of the typed configs (`option(kind, ...)`
declares a field with its rule, `rules_of` collects them): the run's own
(harness/config/run_config.py: `RULES`, `check_options`) and each task's
(harness/tasks/base.py: `TaskConfig.of`), which the preflight and every run apply before anything
loads. The checks of a method's own options live in its `MethodConfig`; the budget's ranges in
`harness.budget.spec.Budget.validate`.
"""

from __future__ import annotations

import math
import os
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.core.errors import HarnessError

DATA_SOURCES = ("hub", "local", "package")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class Rule:
    """What one option (a dotted path in the composed config) may hold.

    Attributes:
        option: e.g. "train.batch_size".
        kind: "int", "number" (int or float, finite), "bool", "text" (a non-empty string),
            "device" (a device name the harness runs on), or a list of one of those: "int list",
            "number list", "text list".
        low, high: the allowed range of a number (of every item of a list), inclusive unless open.
        choices: the allowed values (of every item of a list).
        nullable: null is allowed too.
        distinct: a list may not repeat an item, nor be empty.
    """

    option: str
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    distinct: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        kind, _, plural = self.kind.partition(" ")
        if not plural:
            return self._allows_item(kind, value)
        if not isinstance(value, (list, tuple)):
            return False
        if self.distinct and (not value or len(set(map(repr, value))) < len(value)):
            return False
        return all(self._allows_item(kind, item) for item in value)

    def _allows_item(self, kind: str, value: Any) -> bool:
        if not TYPE_CHECKS[kind](value):
            return False
        if self.choices and value not in self.choices:
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def allowed(self) -> str:
        """What the option may hold, in words: "an integer >= 1, or null"."""
        kind, _, plural = self.kind.partition(" ")
        item = f"one of {', '.join(map(str, self.choices))}" if self.choices else NOUNS[kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        item += f" {' and '.join(bounds)}" if bounds else ""
        if plural:
            item = f"a {'non-empty list of distinct items' if self.distinct else 'list of items'}, each {item}"
        return item + (", or null" if self.nullable else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


TYPE_CHECKS = {
    "int": _is_int,
    "number": _is_number,
    "bool": lambda value: isinstance(value, bool),
    "text": lambda value: isinstance(value, str) and value != "",
    "device": lambda value: isinstance(value, str) and DEVICE.fullmatch(value) is not None,
}
NOUNS = {"int": "an integer", "number": "a number", "bool": "true or false", "text": "a non-empty text",
         "device": "auto, cpu, mps, cuda or cuda:N"}


_ABSENT = object()


def lookup(config: Mapping[str, Any], option: str) -> Any:
    """The value at a dotted path of a plain nested config, or `_ABSENT`."""
    value: Any = config
    for key in option.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created or written to, or None when it can."""
    existing = folder.expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def first_problem(config: Mapping[str, Any], rules: tuple[Rule, ...]) -> str | None:
    """The first option of `config` (a plain, resolved config) that breaks its rule, in one line, or
    None. The first only: options that follow another (`train.data_seed: ${seed}`) would repeat it."""
    for rule in rules:
        value = lookup(config, rule.option)
        if value is not _ABSENT and not rule.allows(value):
            return f"{rule.option}={value!r} is invalid: it must be {rule.allowed()}"
    results_dir = lookup(config, "results_dir")
    if isinstance(results_dir, str) and (reason := unwritable_reason(Path(results_dir))):
        return f"results_dir={results_dir!r} cannot be created or written: {reason}; choose another results_dir"
    return None


def option(kind: str, default: Any = dataclasses.MISSING, **rule: Any) -> Any:
    """A field whose values obey `Rule(<group>.<name>, kind, **rule)` (required unless `default` is given)."""
    return field(default=default, metadata={"rule": (kind, rule)})


def rules_of(cls: type, group: str) -> tuple[Rule, ...]:
    """The rules of a typed config's fields, each named by its dotted option, nested groups
    (fields with `metadata["group"]`, a typed config of their own) included."""
    prefix = f"{group}." if group else ""
    rules: list[Rule] = []
    for f in dataclasses.fields(cls):
        if "rule" in f.metadata:
            rules.append(Rule(prefix + f.name, f.metadata["rule"][0], **f.metadata["rule"][1]))
        elif "group" in f.metadata:
            rules += rules_of(f.metadata["group"], prefix + f.name)
    return tuple(rules)


def check_fields(cls: type, options: Mapping[str, Any], group: str, owner: str) -> None:
    """HarnessError (one line) for the first option of `options` that the typed config `cls` has no
    field for, naming the fields it has, or whose value breaks its field's rule."""
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise HarnessError(f"{group}.{unknown[0]} is not an option of {owner}; its options are: {', '.join(known)}")
    problem = first_problem({group: dict(options)}, rules_of(cls, group))
    if problem:
        raise HarnessError(problem)
