"""`train.gradient_checkpointing`: keep only each decoder layer's input during the forward pass and
recompute the layer in backward, trading about a third more compute for activation memory that no
longer grows with depth.

It is transformers' own per-layer checkpointing, non-reentrant, so frozen inputs need no
`requires_grad` trick and adapters inside a layer (PEFT's or ours) are recomputed with it. A method
it cannot apply to says why in `Method.gradient_checkpointing_refusal`; the preflight refuses that
combination (`refusal`) before any job starts.
"""

from __future__ import annotations

from torch import nn

from harness.core.errors import HarnessError, RunFailed
from methods._core.base import Method


def refusal(method: Method) -> HarnessError | None:
    """The one-line error for a method that activation checkpointing cannot apply to, or None."""
    if not method.gradient_checkpointing_refusal:
        return None
    return HarnessError(f"train.gradient_checkpointing=true does not apply to method {method.name}: "
                        f"{method.gradient_checkpointing_refusal}; set train.gradient_checkpointing=false")


def enable(model: nn.Module) -> None:
    """Turn on activation checkpointing in the transformers model under `model` (a PEFT wrapper or
    the model itself, with or without native adapters)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise RunFailed(f"train.gradient_checkpointing=true: {type(base).__name__} does not support activation "
                        "checkpointing in transformers; set train.gradient_checkpointing=false")
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
