"""The one interface every fine-tuning method implements.

The trainer only ever talks to a `Method`; it never asks which method it holds. The hooks cover
the five shapes methods come in:

* wrap the model (LoRA, DoRA, IA3, prompt tuning): `apply` returns a wrapped model;
* choose which base parameters train (full fine-tuning, BitFit): `apply` flips `requires_grad`;
* change what trains over time (LISA): `on_step` runs before every optimizer step;
* replace the optimizer (LoRA+, LoRA-FA, MeZO): `build_optimizer`, and `training_step` for
  methods that do not use a backward pass;
* need data before training (CorDA, LoRA-GA): `needs_calibration` plus `calibrate`, called before
  `apply` with an endless stream of training batches (its own stream: the training order is the
  same for every method);
* add a term to the loss (SORSA's regulariser): `regularization`.
* carry state from step to step (LISA's layer draws, MeZO's seeds, AdaLoRA's rank allocator):
  `checkpoint_state` and `restore_state`, so an in-run checkpoint resumes it exactly.

Methods whose size is set by one integer option (rank, bottleneck width, virtual tokens, layers)
declare it as `size_knob`, so parameter-matched budgets can size them (harness/budget/param_budget.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.models.loading import CAUSAL


@dataclass
class BuildContext:
    """What a method may need from the run besides the model.

    Attributes:
        tokenizer: the run's tokenizer.
        tokenizer_path: a folder or hub id that `from_pretrained` accepts for that tokenizer.
        model_kind: "causal" (a language-model head) or "encoder" (a new classification head).
        head: the modules of an encoder's new classification head; they start untrained, so every
            method must train them (methods declare encoder support in `model_kinds`).
    """

    tokenizer: Any
    tokenizer_path: str
    model_kind: str = CAUSAL
    head: tuple[str, ...] = ()


@dataclass(frozen=True)
class SizeKnob:
    """The integer option that sets a method's trainable-parameter count (rank, bottleneck width,
    virtual tokens, layers), for parameter-matched budgets (harness/budget/param_budget.py).

    Attributes:
        option: the config field (e.g. "r").
        low: smallest valid value.
        high: largest value tried: an int, or the name of a model config attribute that bounds it
            (e.g. "hidden_size": a rank above the width adds nothing; "num_hidden_layers").
        step: spacing of valid values from `low` (2 for HRA's even ranks).
        monotone: the count never decreases as the option grows (the solver binary-searches it;
            otherwise it scans the whole range).
    """

    option: str
    low: int = 1
    high: int | str = 4096
    step: int = 1
    monotone: bool = True


@dataclass
class MethodConfig:
    """Options every method has. Subclasses add their own, each with a comment on what it does.

    Attributes:
        name: registry name of the method (set by the yaml; checked against the class).
        lr: learning rate the method's paper recommends; `train.lr` overrides it when set.
        weight_decay: AdamW weight decay.
    """

    name: str = ""
    lr: float = 1e-4
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise HarnessError(f"method.lr must be > 0, got {self.lr}; set a positive learning rate")
        self.validate()

    def validate(self) -> None:
        """Raise `HarnessError` for option values the method cannot run with."""

    @staticmethod
    def require(ok: bool, option: str, value: Any, rule: str) -> None:
        if not ok:
            raise HarnessError(f"method.{option}={value!r} is invalid: {rule}")


class Method:
    """Base class: turns a base model into a trainable one and drives its training hooks."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    family: ClassVar[str]  # "full", "lora", "adapter", "prompt", "scaling", "selective", ...
    paper: ClassVar[str]  # "Title (year), arXiv:XXXX.XXXXX"
    backend: ClassVar[str]  # "peft" (delegates) or "native" (implemented here)
    mergeable: ClassVar[bool] = False
    needs_calibration: ClassVar[bool] = False
    trains: ClassVar[bool] = True  # False: the run evaluates the model as `apply` leaves it, with no training step
    size_knob: ClassVar[SizeKnob | None] = None  # None: the trainable count is fixed by the model
    # Model kinds (harness/models/loading.py) the method is known to tune correctly; the preflight refuses others.
    model_kinds: ClassVar[tuple[str, ...]] = (CAUSAL,)
    # Why activation checkpointing (train.gradient_checkpointing) cannot apply to the method; empty: it can.
    gradient_checkpointing_refusal: ClassVar[str] = ""
    # Why one run of the method cannot train over several processes (torchrun); empty: it can.
    distributed_refusal: ClassVar[str] = ""

    def __init__(self, config: MethodConfig):
        self.config = config

    @property
    def supports_packing(self) -> bool:
        """Whether a training row may hold several items one after the other (train.packing,
        harness/train/batching.py). Not for the prompt family (prompt tuning, p-tuning, prefix
        tuning): their virtual tokens would precede only the first item of a row."""
        return self.family != "prompt"

    # -- building -------------------------------------------------------------------------------
    def calibrate(self, model: nn.Module, batches: Iterator[dict[str, torch.Tensor]]) -> None:
        """Take as many training batches as the method needs before `apply` (only when `needs_calibration`)."""

    def calibration_data(self) -> str:
        """Which stream `calibrate` reads: `task` (training batches) or `general_text` (harness/run/calibration.py)."""
        return "task"

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        """Return the model to train; everything not meant to train must have requires_grad=False."""
        raise NotImplementedError

    # -- training -------------------------------------------------------------------------------
    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Every parameter the method trains, now or later in the run (LISA unfreezes layers on a
        schedule). The harness keeps them in fp32 whatever the base dtype (harness/models/precision.py)."""
        return [p for p in model.parameters() if p.requires_grad]

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        params = self.trainable_parameters(model)
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.config.weight_decay)

    def on_step(self, model: nn.Module, step: int) -> None:
        """Called before each optimizer step's forward pass; schedule-changing methods act here."""

    def regularization(self, model: nn.Module) -> torch.Tensor | None:
        """An extra term added to the task loss of every micro-batch (e.g. SORSA's orthonormality
        penalty); None adds nothing."""
        return None

    training_step: ClassVar[Callable[..., torch.Tensor] | None] = None
    """Set by methods that replace forward+backward (zeroth-order): `training_step(model, batch, scale)`
    returns the micro-batch loss times `scale` (1 / grad_accum) and adds `scale` times its gradient
    estimate to `.grad` for the optimizer to apply; None means the standard forward+backward."""

    # -- in-run checkpoints (harness/train/checkpoint.py) ----------------------------------------
    def checkpoint_state(self, model: nn.Module) -> dict[str, Any]:
        """What the method carries from one optimizer step to the next beyond the parameters that
        require grad, the optimizer and the global RNGs (its own generators, schedules, tensors it
        changed that are frozen now), as tensors and plain values; saved after a step."""
        return {}

    def restore_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Put `checkpoint_state`'s result back into a freshly applied model, after `build_optimizer`
        and before the first step, so that training goes on exactly as it would have."""

    # -- after training -------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        """Fold trained weights into the base layers in place, for faster evaluation. Only called
        when `mergeable`; methods with nothing separate to fold (full fine-tuning) keep this no-op."""

    def save(self, model: nn.Module, directory: Path) -> int:
        """Write what is needed to restore the tuned model on top of the base; return its bytes."""
        raise NotImplementedError


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def directory_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())


def config_fields(config_class: type[MethodConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(config_class)]
