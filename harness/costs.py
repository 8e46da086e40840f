"""Measuring what a run costs: peak memory and parameter counts."""

from __future__ import annotations

import resource
from pathlib import Path

import torch
from torch import nn


class PeakMemory:
    """Peak memory of a code block: max allocated bytes on CUDA; on CPU the process's peak RSS
    (VmHWM), reset at entry through /proc/self/clear_refs so every run of a sweep gets its own."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss_peak"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.kind = "rss_peak_process"  # cannot reset: peak since process start
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_bytes = int(line.split()[1]) * 1024
                    return
        except OSError:
            pass
        self.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.kind = "rss_peak_process"


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; tied weights count once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
