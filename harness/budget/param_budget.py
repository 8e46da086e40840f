"""Parameter-matched budgets (param_budget/v1): choose each method's size knob so that its trainable
parameter count lands nearest a target, or say why it cannot.

Counts are never computed from per-method formulas (they would drift from the code): every
candidate value is applied, with the run's seed, to a copy of the very base model the run loads,
and its `requires_grad` parameters are counted. A monotone knob is searched from a first guess
extrapolated from its two smallest values, then binary search (4 applications when the count is
affine in the knob, as it nearly always is); a non-monotone one is scanned. Methods without a knob have one fixed
count. A solution is feasible when the count is within `tolerance` of the target.

Counts are memoised per (model, method options, seed) for the life of the process: the preflight
solves every job of a sweep, and the runs of that sweep (same process) reuse its answers. The
base model stays loaded between solves until `release_models()`, which a run calls before it
trains, so the copy never inflates a run's peak memory.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

import methods
from harness.budget.spec import Budget
from harness.core.errors import HarnessError
from harness.core.hashing import canonical_json
from harness.models.loading import LoadedModel, load_model
from methods._core.base import BuildContext, SizeKnob

_COUNTS: dict[str, int] = {}  # memo: canonical (model, options, seed) -> trainable count
_BASE_TOTALS: dict[str, tuple[int, dict[str, Any]]] = {}  # model key -> (total params, model config)
_LOADED: dict[str, LoadedModel] = {}  # model key -> the loaded base model (one at a time)


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


def _base(model_cfg: Mapping[str, Any], configs_dir: Path) -> LoadedModel:
    key = canonical_json(dict(model_cfg))
    if key not in _LOADED:
        release_models()
        _LOADED[key] = loaded = load_model(model_cfg, configs_dir)
        _BASE_TOTALS[key] = (sum(p.numel() for p in loaded.model.parameters()), loaded.model.config.to_dict())
    return _LOADED[key]


def release_models() -> None:
    """Drop the base model kept for counting (the memoised counts stay)."""
    _LOADED.clear()


def base_total(model_cfg: Mapping[str, Any], configs_dir: Path) -> int:
    """Parameters of the base model before any method (tied weights once)."""
    key = canonical_json(dict(model_cfg))
    if key not in _BASE_TOTALS:
        _base(model_cfg, configs_dir)
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

    def model_config(self) -> dict[str, Any]:
        base_total(self.model_cfg, self.configs_dir)
        return _BASE_TOTALS[canonical_json(self.model_cfg)][1]

    def __call__(self, options: Mapping[str, Any]) -> int:
        key = canonical_json({"model": self.model_cfg, "method": dict(options), "seed": self.seed})
        if key not in _COUNTS:
            _COUNTS[key] = self._apply_and_count(options)
        return _COUNTS[key]

    def _apply_and_count(self, options: Mapping[str, Any]) -> int:
        _, model = applied_copy(options, self.model_cfg, self.configs_dir, self.seed)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)


def applied_copy(options: Mapping[str, Any], model_cfg: Mapping[str, Any], configs_dir: Path,
                 seed: int) -> tuple[methods._core.base.Method, torch.nn.Module]:
    """A fresh method applied (with `seed`, as the run seeds it) to a copy of the base model.
    HarnessError for option values the method rejects on this model."""
    loaded = _base(model_cfg, configs_dir)
    method = methods.build(options)
    model = copy.deepcopy(loaded.model)
    # Same init draws as the run, global RNG left untouched; library deprecation warnings would
    # only clutter the preflight's output (the run itself shows them).
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        if method.needs_calibration:
            method.calibrate(model, synthetic_batches(model.config.vocab_size, 2, 16))
        try:
            model = method.apply(model, BuildContext(loaded.tokenizer, loaded.tokenizer_path, loaded.kind, loaded.head))
        except (ValueError, RuntimeError) as exc:  # peft's own checks on sizes
            raise HarnessError(f"method {method.name}: {str(exc).splitlines()[0]}") from None
    return method, model


def synthetic_batches(vocab_size: int, batch_size: int, length: int,
                      num_labels: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of random tokens: shapes, not values, decide a method's size and a step's time.
    Labels are the tokens (a language model's), or with `num_labels` one per row for a
    classification head (float scores when it has one output)."""
    gen = torch.Generator().manual_seed(0)
    while True:
        ids = torch.randint(0, vocab_size, (batch_size, length), generator=gen)
        if num_labels is None:
            labels = ids.clone()
        elif num_labels == 1:
            labels = torch.rand(batch_size, generator=gen)
        else:
            labels = torch.randint(0, num_labels, (batch_size,), generator=gen)
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def knob_values(knob: SizeKnob, model_config: Mapping[str, Any]) -> list[int]:
    high = knob.high if isinstance(knob.high, int) else int(model_config[knob.high])
    return list(range(knob.low, max(high, knob.low) + 1, knob.step))


def _count_or_none(count: Callable[[int], int], value: int) -> int | None:
    """The count at `value`, or None where the method rejects the value on this model (e.g. a rank
    above the smallest targeted layer): such values are assumed to lie above every valid one."""
    try:
        return count(value)
    except HarnessError:
        return None


def _bracket(values: list[int], count: Callable[[int], int], target: int) -> list[int]:
    """For a monotone knob, the (at most two) valid values whose counts straddle the target.

    Counts are nearly always affine in the knob, so the first guess extrapolates from the two
    smallest values and is checked against its neighbour; a wrong guess only narrows the binary
    search that follows. Rejected values count as too large, so the search stays below them."""
    def at_least(i: int) -> bool:
        c = _count_or_none(count, values[i])
        return c is None or c >= target

    c0 = count(values[0])  # the smallest value must be valid: its error is the method's own message
    if c0 >= target or len(values) == 1:
        return [values[0]]
    lo, hi = 1, len(values) - 1  # the first index whose count reaches the target lies in [lo, hi], or none does
    hi_reaches = None
    c1 = _count_or_none(count, values[1])
    if c1 is not None and c1 > c0:
        guess = min(max(-(-(target - c0) // (c1 - c0)), lo), hi)
        if at_least(guess):
            hi, hi_reaches = guess, True
            if not at_least(guess - 1):
                lo = guess  # the guess was right: no search needed
        else:
            lo = guess + 1
    if lo > hi or not (hi_reaches or at_least(hi)):
        return [values[-1]]  # even the largest value stays below the target
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if at_least(mid) else (mid + 1, hi)
    return [v for v in values[lo - 1: lo + 1] if _count_or_none(count, v) is not None]


def solve(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], configs_dir: Path, target: int,
          tolerance: float, seed: int) -> ParamSolution:
    """Choose the method's size knob for `target` trainable params (see the module docstring)."""
    options = dict(method_options)
    cls = methods.get(str(options.get("name")))
    counter = Counter(model_cfg, configs_dir, seed)
    knob = cls.size_knob
    if knob is None:
        return _judge(cls.name, target, counter(options), None, None, tolerance, None)
    count = lambda v: counter({**options, knob.option: v})
    values = knob_values(knob, counter.model_config())
    candidates = _bracket(values, count, target) if knob.monotone else values
    counted = {v: c for v in candidates if (c := _count_or_none(count, v)) is not None}
    if not counted:
        count(values[0])  # nothing valid: raise the method's own message for its smallest value
    value = min(counted, key=lambda v: (abs(counted[v] - target), v))
    return _judge(cls.name, target, counted[value], knob.option, value, tolerance, (values[0], values[-1]))


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


def match(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], budget: Budget, configs_dir: Path,
          seed: int) -> ParamSolution | None:
    """Solve the run's parameter target (None without one). The run's plan sets the chosen knob value
    in its method options (harness/run/plan.py), so the run, its config record and its run id all
    carry it. An infeasible target raises HarnessError with the reason: the preflight turns it into
    a one-line error. `seed`: the run's init seed (train.init_seed), which the method's init uses."""
    if not budget.has_param_target:
        return None
    target = resolve_target(budget.target_params, budget.target_params_pct, model_cfg, configs_dir)
    solution = solve(method_options, model_cfg, configs_dir, target, budget.param_tolerance, seed)
    if not solution.feasible:
        raise HarnessError(f"budget {budget.name!r} is infeasible for {model_cfg['name']}: {solution.reason}")
    return solution
