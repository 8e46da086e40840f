"""What a run ran on: accelerators, their driver and CUDA, the CPU and its threads.

Time and memory columns are only comparable between runs on the same hardware, so every runs row
carries this as `hardware_json`, and `hardware_key` gives reports a short label to keep such rows
apart. None of it is part of the run id: the same experiment on other hardware is the same run.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a run measures; the report reads `hardware_key` without it
    import torch


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def nvidia_driver() -> str | None:
    """The NVIDIA driver version from `nvidia-smi`, or None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def gpus(device: torch.device) -> list[dict]:
    """One entry per GPU the run used: its name, memory and compute capability."""
    import torch

    if device.type != "cuda":
        return []
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return [{"name": props.name, "memory_bytes": int(props.total_memory),
             "capability": f"{props.major}.{props.minor}"}]


def hardware(device: torch.device) -> dict:
    """The runs row's `hardware_json`: accelerator(s), driver, CUDA/cuDNN as torch sees them, CPU."""
    import torch

    used = gpus(device)
    return {
        "device_type": device.type,
        "gpu_count": len(used),
        "gpus": used,
        "driver": nvidia_driver() if used else None,
        "cuda": torch.version.cuda if used else None,
        "cudnn": torch.backends.cudnn.version() if used else None,
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def hardware_key(info: dict) -> str:
    """A short label that tells hardware apart in reports: `2x NVIDIA H100 80GB HBM3`, or
    `cpu: Intel(R) Xeon(R) Processor (2 threads)`."""
    if info.get("gpus"):
        return f"{info['gpu_count']}x {info['gpus'][0]['name']}"
    return f"cpu: {info.get('cpu_model', 'unknown')} ({info.get('torch_threads', '?')} threads)"


def gpu_hours(wall_seconds: float, info: dict, processes: int = 1) -> float | None:
    """GPU-hours a run held: wall time x GPUs per process x processes; None for a run that used no GPU."""
    return wall_seconds * info["gpu_count"] * processes / 3600.0 if info.get("gpu_count") else None
