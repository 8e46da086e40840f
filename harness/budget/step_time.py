"""Validation of time budgets before training: can `max_time_s` hold even one optimizer step?

The preflight trains the method for two optimizer steps on a copy of the base model, on the run's
device, with the run's batch size and gradient accumulation but the shortest sequences the check
uses (16 random tokens), and times the second step (the first pays for allocations and kernel
selection). That is a lower bound on a real step of the run, so a budget below it is rejected
with certainty and a feasible one is never rejected by it.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from harness.budget.param_budget import applied_copy, synthetic_batches
from harness.budget.spec import Budget
from harness.core.errors import HarnessError
from harness.core.hashing import canonical_json
from harness.models.precision import Precision
from harness.train.loop import train
from harness.train.ready import ready_to_train

PROBE_TOKENS = 16


_MEASURED: dict[str, float] = {}  # the preflight and the run of one job share a measurement


def min_step_seconds(cfg: DictConfig, configs_dir: Path, device: torch.device) -> float:
    options = OmegaConf.to_container(cfg.method, resolve=True)
    key = canonical_json([options, OmegaConf.to_container(cfg.model, resolve=True),
                          OmegaConf.to_container(cfg.train, resolve=True), str(device)])
    if key not in _MEASURED:
        _MEASURED[key] = _measure(cfg, options, configs_dir, device)
    return _MEASURED[key]


def _measure(cfg: DictConfig, options: dict, configs_dir: Path, device: torch.device) -> float:
    method, model = applied_copy(options, OmegaConf.to_container(cfg.model, resolve=True), configs_dir,
                                 int(cfg.train.get("init_seed", cfg.seed)))
    batches = synthetic_batches(model.config.vocab_size, int(cfg.train.batch_size), PROBE_TOKENS,
                                cfg.model.get("num_labels"))  # set for encoders only (harness/models/encoder_rules.py)
    precision = Precision.of(cfg.model.dtype, device, cfg.train.precision)  # model.dtype resolved by the run's prepare
    model.to(precision.base)
    ready_to_train(model, method, bool(cfg.train.gradient_checkpointing))
    stamps: list[float] = []
    lr = float(cfg.train.lr if cfg.train.lr is not None else method.config.lr)
    with contextlib.redirect_stderr(io.StringIO()):  # no progress bar: a preflight error stays one line
        train(model.to(device), method, batches, cfg.train, lr, Budget("step_probe", max_steps=2), device,
              PROBE_TOKENS * int(cfg.train.batch_size), on_step=lambda *_: stamps.append(time.perf_counter()),
              precision=precision)
    return stamps[1] - stamps[0]


def check_time_budget(cfg: DictConfig, budget: Budget, configs_dir: Path, device: torch.device) -> None:
    """HarnessError when the budget's `max_time_s` is shorter than one optimizer step."""
    if budget.max_time_s is None:
        return
    step_s = min_step_seconds(cfg, configs_dir, device)
    if budget.max_time_s < step_s:
        raise HarnessError(
            f"budget {budget.name!r}: max_time_s={budget.max_time_s:g} is shorter than one optimizer step of "
            f"{cfg.method.name} on {cfg.model.name} (at least {step_s:.3g} s here); raise budget.max_time_s"
        )
