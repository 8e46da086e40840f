"""The last touches between a method's `apply` and the first training step, the same for a run,
its time-budget probe and the benchmarks: what trains is fp32 (harness/models/precision.py), and
activation checkpointing is on when asked (harness/train/activation_checkpointing.py)."""

from __future__ import annotations

from torch import nn

from harness.models.precision import keep_fp32
from harness.train import activation_checkpointing
from methods._core.base import Method


def ready_to_train(model: nn.Module, method: Method, gradient_checkpointing: bool) -> None:
    keep_fp32(method.trainable_parameters(model))
    if gradient_checkpointing:
        activation_checkpointing.enable(model)
