"""Parameter-matched budgets (param_budget/v1): choose each method's size knob so that its trainable
parameter count lands nearest a target, or say why it cannot.

Counts are never computed from per-method formulas (they would drift from the code): every
candidate value is applied, with the run's seed, to a copy of the very base model the run loads,
and its `requires_grad` parameters are counted. A monotone knob is binary-searched (about
log2(range) applications); a non-monotone one is scanned. Methods without a knob have one fixed
count. A solution is feasible when the count is within `tolerance` of the target.

Counts are memoised per (model, method options, seed) for the life of the process: the preflight
solves every job of a sweep, and the runs of that sweep (same process) reuse its answers. The base
model itself is released after each solve, so it never inflates a run's peak memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

import methods
from harness.budget import Budget
from harness.errors import HarnessError
from harness.hashing import canonical_json
from harness.models import LoadedModel, load_model
from methods.base import BuildContext, SizeKnob

VERSION = "param_budget/v1"

_COUNTS: dict[str, int] = {}  # memo: canonical (model, options, seed) -> trainable count
_BASE_TOTALS: dict[str, tuple[int, dict[str, Any]]] = {}  # model key -> (total params, model config)


@dataclass(frozen=True)
class ParamSolution:
    """What the solver chose for one run.

    Attributes:
        target: the trainable-parameter target (absolute count).
        achieved: the trainable count at the chosen knob value (or the fixed count).
        knob: the config option it set (None for methods with a fixed count).
        value: the chosen value of that option.
        feasible: achieved is within the tolerance of the target.
        reason: why not, in one line (empty when feasible).
    """

    target: int
    achieved: int
    knob: str | None
    value: int | None
    feasible: bool
    reason: str = ""

    @property
    def relative_error(self) -> float:
        return (self.achieved - self.target) / self.target


def base_total(model_cfg: Mapping[str, Any], configs_dir: Path) -> int:
    """Parameters of the base model before any method (tied weights once)."""
    key = canonical_json(dict(model_cfg))
    if key not in _BASE_TOTALS:
        loaded = load_model(model_cfg, configs_dir)
        _BASE_TOTALS[key] = (sum(p.numel() for p in loaded.model.parameters()), loaded.model.config.to_dict())
    return _BASE_TOTALS[key][0]


def resolve_target(target_params: int | None, target_pct: float | None, model_cfg: Mapping[str, Any],
                   configs_dir: Path) -> int | None:
    """The absolute target: `target_params` as given, or `target_pct` percent of the base model."""
    if target_params is not None:
        return int(target_params)
    if target_pct is not None:
        return max(1, round(base_total(model_cfg, configs_dir) * target_pct / 100.0))
    return None


class Counter:
    """Trainable count of a method at given options on the run's base model (memoised)."""

    def __init__(self, model_cfg: Mapping[str, Any], configs_dir: Path, seed: int):
        self.model_cfg, self.configs_dir, self.seed = dict(model_cfg), configs_dir, seed
        self._loaded: LoadedModel | None = None

    def model_config(self) -> dict[str, Any]:
        base_total(self.model_cfg, self.configs_dir)
        return _BASE_TOTALS[canonical_json(self.model_cfg)][1]

    def __call__(self, options: Mapping[str, Any]) -> int:
        key = canonical_json({"model": self.model_cfg, "method": dict(options), "seed": self.seed})
        if key not in _COUNTS:
            _COUNTS[key] = self._apply_and_count(options)
        return _COUNTS[key]

    def _apply_and_count(self, options: Mapping[str, Any]) -> int:
        if self._loaded is None:
            self._loaded = load_model(self.model_cfg, self.configs_dir)
        loaded = self._loaded
        method = methods.build(options)  # HarnessError for values the method rejects
        model = copy.deepcopy(loaded.model)
        with torch.random.fork_rng(devices=[]):  # same init draws as the run, RNG left untouched
            torch.manual_seed(self.seed)
            if method.needs_calibration:
                method.calibrate(model, _synthetic_batches(model.config.vocab_size))
            try:
                model = method.apply(model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
            except (ValueError, RuntimeError) as exc:  # peft's own checks on sizes
                raise HarnessError(f"method {method.name}: {str(exc).splitlines()[0]}") from None
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def release(self) -> None:
        self._loaded = None


def _synthetic_batches(vocab_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Calibration batches of random tokens: shapes, not values, decide a method's size."""
    gen = torch.Generator().manual_seed(0)
    while True:
        ids = torch.randint(0, vocab_size, (2, 16), generator=gen)
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def knob_values(knob: SizeKnob, model_config: Mapping[str, Any]) -> list[int]:
    high = knob.high if isinstance(knob.high, int) else int(model_config[knob.high])
    return list(range(knob.low, max(high, knob.low) + 1, knob.step))


def _valid_prefix(values: list[int], count: Callable[[int], int]) -> list[int]:
    """Values up to the largest one the method accepts on this model (validity is assumed to hold
    up to a limit, e.g. a rank no larger than the smallest targeted layer): binary search."""
    def ok(v: int) -> bool:
        try:
            count(v)
            return True
        except HarnessError:
            return False

    if ok(values[-1]):
        return values
    if not ok(values[0]):
        count(values[0])  # re-raise the method's own message for its smallest value
    lo, hi = 0, len(values) - 1  # ok(values[lo]) and not ok(values[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(values[mid]) else (lo, mid)
    return values[: lo + 1]


def _nearest_monotone(values: list[int], count: Callable[[int], int], target: int) -> list[int]:
    """The (at most two) values whose counts bracket the target, by binary search."""
    if count(values[-1]) < target:
        return [values[-1]]
    lo, hi = 0, len(values) - 1  # first index whose count >= target lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if count(values[mid]) >= target else (mid + 1, hi)
    return values[max(lo - 1, 0): lo + 1]


def solve(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], configs_dir: Path, target: int,
          tolerance: float, seed: int) -> ParamSolution:
    """Choose the method's size knob for `target` trainable params (see the module docstring)."""
    options = dict(method_options)
    cls = methods.get(str(options.get("name")))
    counter = Counter(model_cfg, configs_dir, seed)
    try:
        knob = cls.size_knob
        if knob is None:
            achieved = counter(options)
            return _judge(cls.name, target, achieved, None, None, tolerance, None)
        count = lambda v: counter({**options, knob.option: v})  # noqa: E731
        values = _valid_prefix(knob_values(knob, counter.model_config()), count)
        candidates = _nearest_monotone(values, count, target) if knob.monotone else values
        value = min(candidates, key=lambda v: (abs(count(v) - target), v))
        return _judge(cls.name, target, count(value), knob.option, value, tolerance, (values[0], values[-1]))
    finally:
        counter.release()


def _judge(name: str, target: int, achieved: int, knob: str | None, value: int | None, tolerance: float,
           span: tuple[int, int] | None) -> ParamSolution:
    error = (achieved - target) / target
    if abs(error) <= tolerance:
        return ParamSolution(target, achieved, knob, value, True)
    if knob is None:
        reason = (f"method {name} has a fixed count of {achieved:,} trainable params on this model (no size knob), "
                  f"{error:+.1%} from the target {target:,}; use a target within {tolerance:.0%} of it or another method")
    elif value == span[0] and achieved > target:
        reason = (f"method {name}'s smallest size ({knob}={value}) already trains {achieved:,} params, "
                  f"{error:+.1%} above the target {target:,}; raise the target or use another method")
    else:
        reason = (f"method {name}: no {knob} in [{span[0]}, {span[1]}] lands within {tolerance:.0%} of the target "
                  f"{target:,} trainable params (nearest: {knob}={value} gives {achieved:,}, {error:+.1%}); "
                  "change the target or use another method")
    return ParamSolution(target, achieved, knob, value, False, reason)


def match(cfg: DictConfig, budget: Budget, configs_dir: Path) -> ParamSolution | None:
    """Solve the run's parameter target (None without one) and write the chosen knob value into
    `cfg.method`, so the run, its config record and its run id all carry it. An infeasible
    target raises HarnessError with the reason: the preflight turns it into a one-line error."""
    if not budget.has_param_target:
        return None
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    target = resolve_target(budget.target_params, budget.target_params_pct, model_cfg, configs_dir)
    seed = int(cfg.train.get("init_seed", cfg.seed))  # the run seeds the method's init with it
    solution = solve(OmegaConf.to_container(cfg.method, resolve=True), model_cfg, configs_dir, target,
                     budget.param_tolerance, seed)
    if not solution.feasible:
        raise HarnessError(f"budget {budget.name!r} is infeasible for {cfg.model.name}: {solution.reason}")
    if solution.knob is not None:
        OmegaConf.update(cfg, f"method.{solution.knob}", solution.value)
    return solution
