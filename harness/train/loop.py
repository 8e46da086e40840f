"""The training loop: short and transparent on purpose, so every number it produces can be traced.

AdamW (or the method's own optimizer), linear warmup then cosine decay, gradient accumulation,
gradient clipping, bf16/fp16 autocast on GPU. It stops at the first budget limit reached and
fails the run on a non-finite loss instead of training on garbage.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
)

from harness.budget.spec import GIB, Budget
from harness.core.errors import RunFailed
from harness.costs.footprint import optimizer_state_bytes
from harness.train.encoding import collate
from methods._core.base import Method


@dataclass
class TrainResult:
    steps: int = 0
    tokens: int = 0
    time_s: float = 0.0
    stop_reason: str = ""
    losses: list[tuple[int, float]] = field(default_factory=list)
    sequences: int = 0  # training sequences seen (micro-batch rows)
    optimizer_bytes: int = 0  # optimizer state at the end of training (costs.memory_split)


def batch_stream(
    encoded: Sequence[Any], batch_size: int, pad_id: int, seed: int,
    collate_fn: Callable[[Sequence[Any], int], dict[str, torch.Tensor]] = collate,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless micro-batches of `encoded` items ((ids, labels) pairs unless `collate_fn` batches
    another kind); a fresh seeded permutation each epoch, so data order depends only on the data seed."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(encoded), generator=gen).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield collate_fn([encoded[i] for i in order[start : start + batch_size]], pad_id)


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def train(
    model: nn.Module,
    method: Method,
    batches: Iterator[dict[str, torch.Tensor]],
    cfg: Mapping[str, Any],
    lr: float,
    budget: Budget,
    device: torch.device,
    tokens_per_step_hint: float,
    on_step: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    accum = int(cfg["grad_accum"])
    optimizer = method.build_optimizer(model, lr)
    planned = budget.planned_steps(tokens_per_step_hint)
    warmup = int(math.ceil(cfg["warmup_ratio"] * (planned or 0)))
    scheduler = (
        get_cosine_schedule_with_warmup(optimizer, warmup, planned)
        if planned
        else get_constant_schedule_with_warmup(optimizer, warmup)
    )
    autocast = autocast_for(device, cfg["precision"])
    result = TrainResult()
    progress = tqdm(total=planned, desc="train", leave=False)
    start = time.perf_counter()
    while True:
        method.on_step(model, result.steps)
        model.train()
        step_loss = 0.0
        for _ in range(accum):
            batch = {k: v.to(device) for k, v in next(batches).items()}
            result.tokens += int(batch["attention_mask"].sum())
            result.sequences += int(batch["attention_mask"].shape[0])
            if method.training_step is not None:
                loss = method.training_step(model, batch, 1.0 / accum)
            else:
                with autocast():
                    loss = model(**batch).loss
                    extra = method.regularization(model)
                    loss = (loss if extra is None else loss + extra) / accum
                loss.backward()
            step_loss += float(loss.detach())
        if not math.isfinite(step_loss):
            raise RunFailed(
                f"loss became {step_loss} at step {result.steps + 1}; lower the learning rate "
                f"(train.lr, now {lr:g}) or check the training data"
            )
        if method.training_step is None and cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg["grad_clip"])
        optimizer.step()
        scheduler.step()
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
        reason = budget.stop_reason(result.steps, result.tokens, elapsed)
        if reason:
            result.stop_reason, result.time_s = reason, elapsed
            break
    progress.close()
    result.optimizer_bytes = optimizer_state_bytes(optimizer)
    return result


def _check_memory_cap(budget: Budget, device: torch.device, step: int) -> None:
    """The hard memory check of a budget's cap on CUDA (on CPU the run reports the peak against it)."""
    cap = budget.max_memory_bytes
    if cap is None or device.type != "cuda":
        return
    peak = torch.cuda.max_memory_allocated(device)
    if peak > cap:
        raise RunFailed(f"peak memory {peak / GIB:.2f} GiB exceeded the budget's cap budget.max_memory_gib="
                        f"{budget.max_memory_gib:g} at step {step}; raise the cap or lower train.batch_size")
