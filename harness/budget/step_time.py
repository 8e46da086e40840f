"""Validation of time budgets before training: can `max_time_s` hold even one optimizer step?

The preflight trains the method for two optimizer steps on a copy of the base model, on the run's
device, with the run's batch size and gradient accumulation but the shortest sequences the check
uses (16 random tokens), and times the second step (the first pays for allocations and kernel
selection). That is a lower bound on a real step of the run, so a budget below it is rejected
with certainty and a feasible one is never rejected by it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from harness.budget.param_budget import applied_copy, synthetic_batches
from harness.budget.spec import Budget
from harness.config.run_config import TrainConfig
from harness.core.errors import HarnessError
from harness.core.hashing import canonical_json
from harness.models.precision import Precision
from harness.train.loop import StepOptions, train
from harness.train.ready import ready_to_train

PROBE_TOKENS = 16


_MEASURED: dict[str, float] = {}  # the preflight and the run of one job share a measurement


def min_step_seconds(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], train_cfg: TrainConfig,
                     configs_dir: Path, device: torch.device) -> float:
    """A lower bound of one optimizer step's seconds (see the module docstring). `model_cfg` has its
    dtype resolved (the run's plan)."""
    key = canonical_json([method_options, model_cfg, dataclasses.asdict(train_cfg), str(device)])
    if key not in _MEASURED:
        _MEASURED[key] = _measure(method_options, model_cfg, train_cfg, configs_dir, device)
    return _MEASURED[key]


def _measure(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], train_cfg: TrainConfig,
             configs_dir: Path, device: torch.device) -> float:
    method, model = applied_copy(dict(method_options), dict(model_cfg), configs_dir, train_cfg.init_seed)
    batches = synthetic_batches(model.config.vocab_size, train_cfg.batch_size, PROBE_TOKENS,
                                model_cfg.get("num_labels"))  # set for encoders only (harness/models/encoder_rules.py)
    precision = Precision.of(model_cfg["dtype"], device, train_cfg.precision)
    model.to(precision.base)
    ready_to_train(model, method, train_cfg.gradient_checkpointing)
    stamps: list[float] = []
    lr = float(train_cfg.lr if train_cfg.lr is not None else method.config.lr)
    with contextlib.redirect_stderr(io.StringIO()):  # no progress bar: a preflight error stays one line
        train(model.to(device), method, batches, StepOptions.of(train_cfg), lr, Budget("step_probe", max_steps=2),
              device, PROBE_TOKENS * train_cfg.batch_size, on_step=lambda *_: stamps.append(time.perf_counter()),
              precision=precision)
    return stamps[1] - stamps[0]


def check_time_budget(method_options: Mapping[str, Any], model_cfg: Mapping[str, Any], train_cfg: TrainConfig,
                      budget: Budget, configs_dir: Path, device: torch.device) -> None:
    """HarnessError when the budget's `max_time_s` is shorter than one optimizer step."""
    if budget.max_time_s is None:
        return
    step_s = min_step_seconds(method_options, model_cfg, train_cfg, configs_dir, device)
    if budget.max_time_s < step_s:
        raise HarnessError(
            f"budget {budget.name!r}: max_time_s={budget.max_time_s:g} is shorter than one optimizer step of "
            f"{method_options['name']} on {model_cfg['name']} (at least {step_s:.3g} s here); raise budget.max_time_s"
        )
