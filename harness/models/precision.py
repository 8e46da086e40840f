"""Which dtype a run's numbers are computed in: the frozen base weights (`model.dtype`), the
trainable ones, and the autocast context every forward pass of the run enters.

The policy, the same for every method:

* The frozen base weights are stored in `model.dtype`. `auto` is bf16 on a GPU that supports it and
  fp32 elsewhere: on CPUs bf16 matmuls are usually slower than fp32 (benchmarks/gpu_throughput.py
  measures it on the machine at hand).
* Every parameter a method trains (adapters, heads, and for full fine-tuning or LISA the base weights
  themselves) is kept in fp32, as is the optimizer state: fp32 master weights. Full fine-tuning under
  `model.dtype=bf16` therefore holds fp32 weights and saves no weight memory; it computes in bf16.
* With half-precision base weights, every forward pass (training, evaluation, probes, latency) runs
  under autocast in that dtype, so fp32 trainable weights and half-precision frozen ones meet in
  half-precision matmuls, on CPU and GPU alike. With fp32 base weights, `train.precision` keeps its
  older meaning: autocast on CUDA (bf16 where supported, else fp16), none on CPU.
* SVD and other initialisations that read the base weights run outside autocast and compute in fp32
  before casting (PEFT's PiSSA/OLoRA/CorDA inits and methods/sorsa.py do so).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.core.notices import notice_once
from harness.costs.matmul_peak import matmul_flops_per_s

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = {dtype: name for name, dtype in DTYPES.items()}


def resolve_dtype(name: str, device: torch.device) -> str:
    """`model.dtype` as the run loads it: `auto` becomes bf16 on a GPU with bf16 support, else fp32."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if name not in DTYPES:
        raise HarnessError(f"model.dtype={name!r} is unknown; use auto, {', '.join(DTYPES)}")
    return name


@dataclass(frozen=True)
class Precision:
    """How one run computes: the dtype of its frozen base weights and the autocast dtype of its
    forward passes (None: no autocast)."""

    base: torch.dtype
    autocast_dtype: torch.dtype | None
    device_type: str

    @classmethod
    def of(cls, base_name: str, device: torch.device, train_precision: str = "auto") -> "Precision":
        """From a resolved `model.dtype` and `train.precision`; they must not contradict each other."""
        base = DTYPES[base_name]
        if base != torch.float32:
            if train_precision not in ("auto", base_name):
                raise HarnessError(f"train.precision={train_precision} contradicts model.dtype={base_name}: half-precision "
                                   f"base weights compute in their own dtype; set train.precision=auto or model.dtype=fp32")
            return cls(base, base, device.type)
        return cls(base, _legacy_autocast(device, train_precision), device.type)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context every forward pass of the run enters."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    @property
    def name(self) -> str:
        return NAMES[self.base]


def slower_half_notice(precision: Precision, device: torch.device) -> None:
    """Say so when the half-precision base weights of a CPU run compute slower than fp32 would here
    (fp16 matmuls on most CPUs are tens of times slower; bf16 ones depend on the CPU's instructions)."""
    if device.type != "cpu" or precision.base == torch.float32:
        return
    slowdown = matmul_flops_per_s(torch.float32, device, 512, 0.05) / matmul_flops_per_s(precision.base, device, 512, 0.05)
    if slowdown > 1.2:
        notice_once(f"[harness] model.dtype={precision.name} on this CPU: its matmuls run {slowdown:.1f}x slower than fp32 "
                    "(measured now); model.dtype=fp32 (or auto) would train faster here")


def _legacy_autocast(device: torch.device, precision: str) -> torch.dtype | None:
    """`train.precision` over fp32 base weights: autocast on CUDA only."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16" or (precision == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def keep_fp32(parameters: Iterable[nn.Parameter]) -> int:
    """Cast the given (trainable) parameters to fp32 in place; returns how many were cast."""
    cast = 0
    for p in parameters:
        if p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
            cast += 1
    return cast

