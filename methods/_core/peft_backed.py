"""Shared plumbing for methods that delegate to HF `peft`: target checks, wrapping, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import PeftConfig, get_peft_model
from torch import nn

from harness.core.errors import HarnessError
from harness.models.loading import ENCODER
from methods._core.base import BuildContext, Method, directory_bytes


def task_fields(context: BuildContext | None) -> dict[str, Any]:
    """peft's task type for the model kind. On an encoder, SEQ_CLS with the new head as
    `modules_to_save`: peft then trains the head whole and saves it with the adapter. Configs built
    before a context exists (calibration) are a causal LM's."""
    if context is None or context.model_kind != ENCODER:
        return {"task_type": "CAUSAL_LM"}
    return {"task_type": "SEQ_CLS", "modules_to_save": list(context.head)}


def linear_module_suffixes(model: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, nn.Linear)})


def check_targets(model: nn.Module, targets: tuple[str, ...], option: str = "target_modules") -> None:
    """Fail with the valid names when a target matches nothing (peft's own error is a traceback).
    A target matches as peft matches it: a trailing part of a module name (`dense`, `output.dense`)."""
    present = {".".join(parts[i:]) for name, _ in model.named_modules() if name
               for parts in [name.split(".")] for i in range(len(parts))}
    missing = [t for t in targets if t not in present]
    if missing:
        raise HarnessError(
            f"method.{option}: {', '.join(missing)} match no module of this model; "
            f"linear modules here: {', '.join(linear_module_suffixes(model))}"
        )


class PeftMethod(Method):
    """A method whose model surgery is entirely `peft.get_peft_model(model, self.peft_config())`."""

    backend = "peft"
    target_option: str | None = "target_modules"

    def peft_config(self, context: BuildContext) -> PeftConfig:
        raise NotImplementedError

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        if self.target_option:
            check_targets(model, tuple(getattr(self.config, self.target_option)), self.target_option)
        return get_peft_model(model, self.peft_config(context))

    def merge(self, model: nn.Module) -> None:
        model.merge_adapter()

    def save(self, model: nn.Module, directory: Path) -> int:
        model.save_pretrained(directory)
        return directory_bytes(directory)
