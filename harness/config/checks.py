"""Type and range checks of the options every run has, as one table of rules.

The preflight calls `check_options` on every job's composed config before anything loads: a value
of the wrong type or out of range (`seed=abc`, `task.n_eval=-3`) is one line naming the option, the
bad value and what is allowed, instead of a traceback deep in a run or a silently different run.
An option a config does not have is not checked (tasks and budgets each have their own options).
The checks of a method's own options live in its `MethodConfig`; the budget's ranges in
`harness.budget.spec.Budget.validate`. Self-contained on purpose: typed config classes can take the
table over as it is.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
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


def integer(option: str, low: int | None = None, **more: Any) -> Rule:
    return Rule(option, "int", low=low, **more)


def number(option: str, low: float | None = None, high: float | None = None, **more: Any) -> Rule:
    return Rule(option, "number", low=low, high=high, **more)


def flag(option: str) -> Rule:
    return Rule(option, "bool")


RULES: tuple[Rule, ...] = (
    integer("seed", 0),
    Rule("device", "device"),
    Rule("results_dir", "text"),
    Rule("sweep_name", "text"),
    flag("force"),
    Rule("data.dir", "text", nullable=True),
    Rule("data.order", "text list", choices=DATA_SOURCES, distinct=True),
    # train.*: conf/config.yaml's comments say what each does
    number("train.lr", 0, low_open=True, nullable=True),
    integer("train.batch_size", 1),
    integer("train.grad_accum", 1),
    integer("train.max_seq_len", 1),
    number("train.warmup_ratio", 0, 1),
    number("train.grad_clip", 0, nullable=True),  # 0 or null: no clipping
    Rule("train.precision", "text", choices=("auto", "fp32", "fp16", "bf16")),
    integer("train.data_seed", 0),
    integer("train.init_seed", 0),
    Rule("train.lr_sweep", "number list", low=0, low_open=True),
    integer("train.eval_every", 0),
    integer("train.val_items", 1),
    number("train.steps_to_target_fraction", 0, 1, low_open=True),
    flag("train.gradient_checkpointing"),
    flag("train.group_by_length"),
    flag("train.packing"),
    integer("train.checkpoint_every", 0),
    number("train.checkpoint_minutes", 0),
    flag("train.keep_checkpoints"),
    Rule("train.strategy", "text", choices=("auto", "ddp", "fsdp")),
    integer("train.world_size", 1),
    Rule("model.dtype", "text", choices=("auto", "bf16", "fp16", "fp32")),
    flag("eval.merge_adapters"),
    flag("eval.log_samples"),
    integer("eval.latency_tokens", 0),
    # task options several tasks share (each task's yaml has a subset)
    integer("task.n_eval", 1, nullable=True),
    integer("task.n_shots", 0),
    integer("task.shot_seed", 0),
    integer("task.num_fewshot", 0),
    integer("task.max_new_tokens", 1),
    integer("task.batch_size", 1),
    integer("task.eval_batch_size", 1),
    integer("task.score_batch_size", 1),
    integer("task.train_limit", 1, nullable=True),
    flag("task.chat_template"),
    # budget numbers: their types here, their ranges in Budget.validate
    integer("budget.max_steps", nullable=True),
    integer("budget.max_tokens", nullable=True),
    number("budget.max_time_s", nullable=True),
    number("budget.epochs", nullable=True),
    integer("budget.target_params", nullable=True),
    number("budget.target_params_pct", nullable=True),
    number("budget.param_tolerance", nullable=True),
    number("budget.max_memory_gib", nullable=True),
    flag("forgetting.target_gain"),
    flag("forgetting.fallback_to_kl"),
    integer("forgetting.general_text.max_chars", 1),
    integer("forgetting.general_text.n_chunks", 1),
    integer("forgetting.general_text.chunk_tokens", 1),
    integer("forgetting.general_text.batch_size", 1),
    flag("forgetting.general_suite.required"),
    integer("forgetting.kl_drift.n_prompts", 1),
    integer("forgetting.kl_drift.new_tokens", 1),
    flag("wandb.enabled"),
)

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


def first_problem(config: Mapping[str, Any], rules: tuple[Rule, ...] = RULES) -> str | None:
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


def check_options(config: Mapping[str, Any]) -> None:
    """Raise HarnessError naming the first option that breaks its rule, the bad value and what is allowed."""
    problem = first_problem(config)
    if problem:
        raise HarnessError(problem)
