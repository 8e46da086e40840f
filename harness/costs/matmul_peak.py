"""The matmul throughput a device reaches here, measured: the denominator of model-FLOPs utilisation
on a CPU (whose peak no table knows), and the check that half precision is not slower than fp32 on
it (harness/models/precision.py)."""

from __future__ import annotations

import time

import torch

_MEASURED: dict[tuple, float] = {}


def matmul_flops_per_s(dtype: torch.dtype, device: torch.device, size: int = 1024, seconds: float = 0.2) -> float:
    """FLOP/s of square `size` matmuls in `dtype` on `device`, the best of repeated timings within
    about `seconds`; memoised per process."""
    key = (dtype, str(device), size)
    if key not in _MEASURED:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        best, spent = float("inf"), 0.0
        for attempt in range(100):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            took = time.perf_counter() - start
            spent += took
            if attempt:  # the first call warms up kernels and caches
                best = min(best, took)
            if spent > seconds and attempt >= 3:
                break
        _MEASURED[key] = 2 * size**3 / best
    return _MEASURED[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
