"""The untouched base model: no method, no training. `method=none` evaluates the base with the
task's own evaluation and the run's probes, and files the row as method `base`, with zero trainable
parameters, zero steps and zero train time: the anchor every paper table starts from, and the origin
of the learning-versus-forgetting plot. It takes its place on a sweep's method axis like any other
method (`method=lora,pissa,none`). Causal LMs only: an encoder's base has an untrained head.
Implemented here (backend "native")."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from torch import nn

from methods._core.base import BuildContext, Method, MethodConfig
from methods._core.native import freeze
from methods._core.registry import register


@register
class BaseModel(Method):
    name = "base"
    config_class = MethodConfig
    family = "base"
    paper = "none: the pretrained model as it is"
    backend = "native"
    trains: ClassVar[bool] = False
    distributed_refusal = "it does not train: evaluate the base model with one process"

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        freeze(model)
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        """Nothing to save: the base model is its own checkpoint."""
        return 0
