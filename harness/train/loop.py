"""The training loop: short and transparent on purpose, so every number it produces can be traced.

AdamW (or the method's own optimizer), linear warmup then cosine (or linear) decay, gradient accumulation,
gradient clipping, autocast as harness/models/precision.py decides. It stops at the first budget limit reached and
fails the run on a non-finite loss instead of training on garbage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from harness.budget.spec import GIB, Budget
from harness.core.errors import HarnessError, RunFailed
from harness.costs.footprint import optimizer_state_bytes
from harness.distributed.parallel import Parallel, labels_prefixed, target_count
from harness.models.precision import Precision
from harness.train.batching import batch_counts
from harness.train.checkpoint import Checkpointer
from methods._core.base import Method


@dataclass
class TrainResult:
    steps: int = 0
    tokens: int = 0
    time_s: float = 0.0
    stop_reason: str = ""
    losses: list[tuple[int, float]] = field(default_factory=list)
    sequences: int = 0  # training items seen (a packed row holds several)
    positions: int = 0  # positions of the training batches, padding included (harness/train/batching.py)
    optimizer_bytes: int = 0  # optimizer state at the end of training (costs.memory_split)
    skipped_steps: int = 0  # train.loss_scaling=dynamic: optimizer steps skipped for overflowing fp16 gradients


@dataclass(frozen=True)
class StepOptions:
    """The loop's own piece of the run's `TrainConfig` (harness/config/run_config.py)."""

    grad_accum: int  # micro-batches per optimizer step
    warmup_ratio: float  # fraction of the planned steps with a linear lr warm-up
    grad_clip: float | None  # gradient-norm clip; 0 or None: none
    precision: str  # the autocast setting when no resolved `Precision` is given
    warmup_steps: int | None = None  # linear warm-up as a count of steps; None: from warmup_ratio
    lr_schedule: str = "cosine"  # decay after warm-up over the planned steps: cosine | linear
    loss_scaling: str = "none"  # fp16 autocast: dynamic (GradScaler) | none

    @classmethod
    def of(cls, train: Any) -> "StepOptions":
        return cls(train.grad_accum, train.warmup_ratio, train.grad_clip, train.precision, train.warmup_steps,
                   train.lr_schedule, train.loss_scaling)

    def scheduler(self, optimizer: torch.optim.Optimizer, planned: int | None) -> Any:
        """Linear warm-up (`warmup_steps`, else `warmup_ratio` of the planned steps), then the decay
        of `lr_schedule` to 0 at the last planned step; constant after warm-up when no step count is
        planned (a time-only budget)."""
        warmup = self.warmup_steps if self.warmup_steps is not None else int(math.ceil(self.warmup_ratio * (planned or 0)))
        if not planned:
            return get_constant_schedule_with_warmup(optimizer, warmup)
        decay = get_linear_schedule_with_warmup if self.lr_schedule == "linear" else get_cosine_schedule_with_warmup
        return decay(optimizer, warmup, planned)


def train(
    model: nn.Module,
    method: Method,
    batches: Iterator[dict[str, torch.Tensor]],
    options: StepOptions,
    lr: float,
    budget: Budget,
    device: torch.device,
    tokens_per_step_hint: float,
    on_step: Callable[[int, float, float], None] | None = None,
    precision: Precision | None = None,
    checkpoint: Checkpointer | None = None,
    parallel: Parallel | None = None,
) -> TrainResult:
    """Train until the budget stops it. `precision` (harness/models/precision.py) gives the autocast of
    every forward pass; None: fp32 base weights under `options.precision`. `checkpoint`
    (harness/train/checkpoint.py) restores a saved state before the first step (`batches` must then
    start after the micro-batches it consumed) and saves one after the steps it asks for. `parallel`
    (harness/distributed/parallel.py) spreads each step over the ranks of a run; the counts, loss
    and stop decisions are then those of the global micro-batch, the same on every rank."""
    parallel = parallel or Parallel()
    accum = options.grad_accum
    optimizer = method.build_optimizer(model, lr)
    planned = budget.planned_steps(tokens_per_step_hint)
    scheduler = options.scheduler(optimizer, planned)
    resolved = precision or Precision.of("fp32", device, options.precision)
    autocast = resolved.autocast
    # train.loss_scaling=dynamic under fp16 autocast: scaled backward, unscaled before clipping, steps
    # with inf/nan gradients skipped (the lr schedule then waits, as HF Trainer's); a no-op otherwise.
    scaler = torch.amp.GradScaler(device.type, enabled=options.loss_scaling == "dynamic"
                                  and resolved.autocast_dtype == torch.float16 and method.training_step is None)
    result = TrainResult()
    prefixed = labels_prefixed(model)
    trained_s = checkpoint.begin(model, method, optimizer, scheduler, result, scaler) if checkpoint else 0.0
    progress = tqdm(total=planned, initial=result.steps, desc="train", leave=False)
    start = time.perf_counter() - trained_s  # a resumed run's budget goes on from its training time so far
    while True:
        method.on_step(model, result.steps)
        model.train()
        step_loss = 0.0
        for _ in range(accum):
            batch = {k: v.to(device) for k, v in next(batches).items()}
            tokens, items, positions, targets = parallel.counts((*batch_counts(batch), target_count(batch, prefixed)))
            result.tokens += tokens
            result.sequences += items
            result.positions += positions
            if method.training_step is not None:
                with autocast():
                    loss = method.training_step(model, batch, 1.0 / accum)
            else:
                with autocast():
                    share = parallel.share(model, batch, targets)  # the loss itself in a process of one
                    extra = method.regularization(model)
                    scaled = share * parallel.gradient_scale
                    loss = (scaled if extra is None else scaled + extra) / accum
                scaler.scale(loss).backward()
                if parallel.world.distributed:  # what one process would report for the global micro-batch
                    whole = parallel.total(share.detach())
                    loss = (whole if extra is None else whole + extra.detach()) / accum
            step_loss += float(loss.detach())
        if not math.isfinite(step_loss):
            raise RunFailed(
                f"loss became {step_loss} at step {result.steps + 1}; lower the learning rate "
                f"(train.lr, now {lr:g}) or check the training data"
            )
        if method.training_step is None and options.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], options.grad_clip)
        scale = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(optimizer)  # optimizer.step(), unless scaled gradients overflowed
        scaler.update()
        if scale is None or scaler.get_scale() >= scale:  # a skipped step lowers the scale
            scheduler.step()
        else:
            result.skipped_steps += 1
        _check_memory_cap(budget, device, result.steps + 1)
        optimizer.zero_grad(set_to_none=True)
        result.steps += 1
        result.losses.append((result.steps, step_loss))
        elapsed = time.perf_counter() - start
        progress.update(1)
        progress.set_postfix(loss=f"{step_loss:.3f}")
        if on_step is not None:
            hook_start = time.perf_counter()
            on_step(result.steps, step_loss, scheduler.get_last_lr()[0])
            start += time.perf_counter() - hook_start  # callbacks (validation, logging) are not training time
        reason = parallel.world.from_main(budget.stop_reason(result.steps, result.tokens, elapsed))  # ranks stop together
        if reason:
            result.stop_reason, result.time_s = reason, elapsed
            break
        if checkpoint is not None and checkpoint.due(result.steps):
            save_start = time.perf_counter()
            checkpoint.save(model, method, optimizer, scheduler, result, elapsed, scaler)
            start += time.perf_counter() - save_start  # nor is writing a checkpoint
    progress.close()
    result.optimizer_bytes = optimizer_state_bytes(optimizer)
    return result


def check_loss_scaling(loss_scaling: str, precision: Precision, strategy: str) -> None:
    """HarnessError in one line when `train.loss_scaling=dynamic` cannot apply to this run: it
    scales fp16 gradients, so the run must compute in fp16, and not under fsdp (whose sharded
    gradients would need a sharded scaler)."""
    if loss_scaling != "dynamic":
        return
    if precision.autocast_dtype != torch.float16:
        computes = "fp32" if precision.autocast_dtype is None else str(precision.autocast_dtype).removeprefix("torch.")
        raise HarnessError(f"train.loss_scaling=dynamic scales fp16 gradients, and this run computes in {computes}; "
                           "set train.loss_scaling=none, or compute in fp16 (model.dtype=fp16)")
    if strategy == "fsdp":
        raise HarnessError("train.loss_scaling=dynamic does not support train.strategy=fsdp (sharded gradients need a "
                           "sharded scaler); use train.strategy=ddp, or bf16 (model.dtype=bf16, train.loss_scaling=none)")


def _check_memory_cap(budget: Budget, device: torch.device, step: int) -> None:
    """The hard memory check of a budget's cap on CUDA (on CPU the run reports the peak against it)."""
    cap = budget.max_memory_bytes
    if cap is None or device.type != "cuda":
        return
    peak = torch.cuda.max_memory_allocated(device)
    if peak > cap:
        raise RunFailed(f"peak memory {peak / GIB:.2f} GiB exceeded the budget's cap budget.max_memory_gib="
                        f"{budget.max_memory_gib:g} at step {step}; raise the cap or lower train.batch_size")
