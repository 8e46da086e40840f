"""Measuring what a run costs: peak memory and its split, parameter counts (trainable and stored).

Memory split (cost/mem_split/v1), in bytes:
* weights: every parameter and buffer of the tuned model (frozen base + added modules);
* grads: one gradient per trainable parameter (what backward allocates for them);
* optimizer: the optimizer's state tensors at the end of training (AdamW: two moments per
  trained parameter; LISA holds them for its active layers only);
* activations: an estimate, peak - (memory at training start) - grads - optimizer, floored at 0.
  On CUDA the start is the allocated memory (weights); on CPU it is the RSS at training start,
  so the runtime's own memory cancels out. Allocator caching and fragmentation land in it too.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from harness.core.metrics import Metric

MEM_SPLIT_VERSION = "cost/mem_split/v1"


def _rss_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of a code block: max allocated bytes on CUDA; on CPU the process's peak RSS
    (VmHWM), reset at entry through /proc/self/clear_refs so every run of a sweep gets its own.
    `start_bytes` is the memory in use at entry (allocated on CUDA, RSS on CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self.start_bytes = 0
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss_peak"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.kind = "rss_peak_process"  # cannot reset: peak since process start
        self.start_bytes = _rss_bytes("VmRSS") or 0
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        peak = _rss_bytes("VmHWM")
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.kind = "rss_peak_process"
        self.peak_bytes = peak


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; tied weights count once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def stored_parameter_count(directory: Path) -> int:
    """Numbers in what the method saved to restore the tuned model (every tensor of its
    safetensors files). It differs from the trainable count where a method stores more (VeRA's
    shared random projections, LISA's every layer it ever trained, column indices) or less."""
    total = 0
    for path in sorted(Path(directory).rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                n = 1
                for dim in shape:
                    n *= dim
                total += n
    return total


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(tensor_bytes(state.values()) for state in optimizer.state.values())


def memory_split(model: nn.Module, optimizer_bytes: int, peak: PeakMemory, task: str) -> list[Metric]:
    """The cost/mem_split/v1 metric rows (see the module docstring)."""
    weights = tensor_bytes(model.parameters()) + tensor_bytes(model.buffers())
    grads = tensor_bytes(p for p in model.parameters() if p.requires_grad)
    activations = max(0, peak.peak_bytes - peak.start_bytes - grads - optimizer_bytes)
    values = {"mem_weights_bytes": weights, "mem_grads_bytes": grads, "mem_optimizer_bytes": optimizer_bytes,
              "mem_activations_bytes": activations}
    return [Metric(task, name, float(v), None, 1, False, MEM_SPLIT_VERSION) for name, v in values.items()]


def memory_cap_check(peak_bytes: int, cap_bytes: int | None) -> bool | None:
    """Whether the measured peak stayed within the budget's cap (None without a cap)."""
    return None if cap_bytes is None else peak_bytes <= cap_bytes



def extra_prompt_tokens(model: nn.Module) -> int:
    """Positions a prompt-learning method adds to every sequence (its virtual tokens; prefix
    tuning adds them to every layer's keys and values), 0 for every other method."""
    config = getattr(model, "active_peft_config", None)
    if not getattr(config, "is_prompt_learning", False):
        return 0
    return int(config.num_virtual_tokens)
