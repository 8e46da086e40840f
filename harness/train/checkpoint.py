"""In-run checkpoints, so a killed or preempted run resumes where it was instead of starting over.

With `train.checkpoint_every` (optimizer steps) or `train.checkpoint_minutes` (wall-clock minutes
since the last save) set, the training loop saves after an optimizer step, unless that step ends
training: the trained parameters (by name: those that require grad, plus whatever the method keeps
outside them, `Method.checkpoint_state`), the optimizer and scheduler, the RNG states (torch CPU and
CUDA, Python `random`, NumPy), the training record so far (steps, tokens, losses, training time, so
budgets continue where they were) and what the run adds (`extra`: the validation curve). A rerun of
the same run id loads it, skips the micro-batches already consumed (steps x grad_accum) and goes on
exactly as the uninterrupted run would: on CPU the result is the same bit for bit
(tests/e2e/test_checkpoints.py).

Where: `<results_dir>/checkpoints/<run_id>/<name>.pt`, one file per training of the run (`train`,
or one per candidate lr of `train.lr_sweep`). The run id does not change between invocations, so a
rerun of the same command, or a Slurm job that submitit requeues, finds it. Each save writes a temp
file in that folder, fsyncs it and renames it over the last one: a kill during a save leaves the
previous checkpoint whole (`fault_point("mid_checkpoint")` sits between the two, for tests). The
run deletes the folder when it ends (finished or failed) unless `train.keep_checkpoints`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from harness.core import atomic
from harness.core.errors import RunFailed
from harness.core.metrics import Metric
from harness.distributed import sharded
from harness.distributed.world import World
from methods._core.base import Method

FORMAT = 1  # bumped when the saved layout changes; an older file is refused with how to start over
RESUMED_VERSION = "cost/resumed/v1"


def folder(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "checkpoints" / run_id


def discard(results_dir: str | Path, run_id: str) -> None:
    """Delete a run's checkpoints (all of its trainings), and `checkpoints/` once it is empty."""
    run_folder = folder(results_dir, run_id)
    shutil.rmtree(run_folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # other runs' checkpoints still there, or none ever written
        run_folder.parent.rmdir()


def resumed_metric(step: int) -> list[Metric]:
    """cost/resumed/v1: the step a run went on from after a kill (no row when it ran in one go). Its
    peak memory, calibration and lr-search times cover the last part only; its training time is the sum of the
    parts' (work redone after the last checkpoint not counted)."""
    return [Metric("cost", "resumed_from_step", float(step), None, 1, False, RESUMED_VERSION)] if step else []


def open_checkpoint(every: int, minutes: float, results_dir: str | Path, run_id: str,
                    name: str = "train", world: World = World()) -> Checkpointer | None:
    """The checkpointer of one training of a run, saving every `every` steps or `minutes` minutes
    (train.checkpoint_every, train.checkpoint_minutes), with its last checkpoint loaded if there is
    one; None when both are off."""
    if not every and not minutes:
        return None
    return Checkpointer(folder(results_dir, run_id) / f"{name}.pt", every, minutes, world=world)


class Checkpointer:
    """Saves one training's state to `path` every `every_steps` steps or `every_minutes` minutes,
    and restores the state found there when training begins."""

    def __init__(self, path: Path, every_steps: int = 0, every_minutes: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, world: World = World()):
        """In a run over several processes every rank restores the same file; rank 0 writes it,
        with each rank's RNG states, and the ranks decide together when to save (`due`)."""
        self.path, self.every_steps, self.every_s, self.clock = Path(path), every_steps, every_minutes * 60, clock
        self.world = world
        self.extra: Callable[[], dict[str, Any]] = dict  # what the run adds to every save (its validation curve)
        self.last_save = clock()
        # restored by `begin`, then let go
        self._loaded = _load(self.path, world.distributed) if self.path.exists() else None
        self.resumed_step = int(self._loaded["result"]["steps"]) if self._loaded else 0  # 0: starting fresh
        self.resumed_extra: dict[str, Any] = self._loaded["extra"] if self._loaded else {}

    def begin(self, model: nn.Module, method: Method, optimizer: torch.optim.Optimizer, scheduler: Any,
              result: Any, scaler: torch.amp.GradScaler | None = None) -> float:
        """Restore the loaded state into a freshly built training (before its first step); return the
        training seconds already spent. Starts the clock of `every_minutes`."""
        self.last_save = self.clock()
        state, self._loaded = self._loaded, None
        if state is None:
            return 0.0
        method.restore_state(model, state["method"])
        if sharded.is_sharded(model):  # train.strategy=fsdp: rank 0's whole tensors into every rank's shards
            _check_shapes(sharded.trainable_shapes(model), state["parameters"], self.path)
            sharded.load_full_trainable_state(model, state["parameters"], self.world)
            sharded.load_full_optimizer_state(model, optimizer, state["optimizer"], self.world)
        else:
            _load_parameters(model, state["parameters"], self.path)
            optimizer.load_state_dict(state["optimizer"])
            _move_unkeyed_state(optimizer)
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):  # train.loss_scaling=dynamic: the loss scale goes on
            scaler.load_state_dict(state["scaler"])
        for f in dataclasses.fields(result):
            if f.name in state["result"]:
                setattr(result, f.name, state["result"][f.name])
        _set_rng(state["rng_ranks"][self.world.rank] if "rng_ranks" in state else state["rng"])
        return float(state["elapsed_s"])

    def due(self, step: int) -> bool:
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.world.from_main(bool(self.every_s) and self.clock() - self.last_save >= self.every_s))

    def save(self, model: nn.Module, method: Method, optimizer: torch.optim.Optimizer, scheduler: Any,
             result: Any, elapsed_s: float, scaler: torch.amp.GradScaler | None = None) -> None:
        """Under train.strategy=fsdp every rank takes part in gathering the whole trainable state and
        optimizer state to rank 0, which writes them unsharded."""
        whole = sharded.is_sharded(model)
        state = {
            "format": FORMAT,
            "parameters": (sharded.full_trainable_state(model) if whole else
                           {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}),
            "method": method.checkpoint_state(model),
            "optimizer": sharded.full_optimizer_state(model, optimizer) if whole else optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "result": dataclasses.asdict(result),
            "elapsed_s": elapsed_s,
            "rng": _rng(),
            "extra": self.extra(),
        }
        rngs = self.world.gather(state["rng"])
        if self.world.main:
            _write_atomic({**state, **({"rng_ranks": rngs} if self.world.distributed else {})}, self.path)
        self.world.barrier()  # no rank goes on before the checkpoint is whole
        self.last_save = self.clock()


def _write_atomic(state: dict[str, Any], path: Path) -> None:
    """Temp file, fsync, rename over `path`; stale temp files of earlier kills go with the next save."""
    # tests kill at the fault point `mid_checkpoint`: the previous checkpoint must stay usable
    atomic.write_atomic(path, lambda f: torch.save(state, f), f".{path.name}.", "mid_checkpoint")
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _unusable(path: Path, why: str) -> RunFailed:
    return RunFailed(f"cannot resume from the checkpoint {path}: {why}; the run starts over once {path.parent} "
                     "is gone (a failed run deletes it unless train.keep_checkpoints)")


def _load(path: Path, mapped: bool = False) -> dict[str, Any]:
    """`mapped`: memory-mapped, so that the ranks of a run on one node share one copy in the page
    cache and read only what they restore (under fsdp rank 0 alone reads the tensors)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as exc:
        raise _unusable(path, f"unreadable ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise _unusable(path, "written by another version of the harness")
    return state


def _load_parameters(model: nn.Module, saved: dict[str, torch.Tensor], path: Path) -> None:
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    _check_shapes({n: tuple(p.shape) for n, p in trainable.items()}, saved, path)
    with torch.no_grad():
        for name, param in trainable.items():
            param.copy_(saved[name])


def _check_shapes(expected: dict[str, tuple[int, ...]], saved: dict[str, torch.Tensor], path: Path) -> None:
    if expected != {n: tuple(t.shape) for n, t in saved.items()}:
        raise _unusable(path, "it holds other trainable parameters than this run builds")


def _move_unkeyed_state(optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state keyed by something other than a parameter (peft's LoRA-FA keys it by name)
    is loaded as saved, on the CPU; move it next to the parameters, as torch does for the rest."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not params:
        return
    device = params[0].device
    for key, entry in optimizer.state.items():
        if not isinstance(key, torch.Tensor) and isinstance(entry, dict):
            for field_name, value in entry.items():
                if isinstance(value, torch.Tensor):
                    entry[field_name] = value.to(device)


def _rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, keys.tolist(), pos, has_gauss, cached)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in zip(range(torch.cuda.device_count()), state["cuda"]):
            torch.cuda.set_rng_state(cuda_state, device)
