"""BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models
(Ben Zaken, Ravfogel & Goldberg, 2021), arXiv:2106.10199.

What trains: the bias vectors of the targeted linear layers, nothing else. Llama-family models have
no biases in their linear layers, which is the same as biases fixed at zero; so every targeted
layer without one gets a zero-initialised bias that trains (the model starts exactly at the base),
and layers that already have one (e.g. Qwen's q/k/v) train it from its pretrained value. Norm
weights are not biases and stay frozen, like every weight matrix. Trainable count: the sum of
`out_features` over the targeted layers. On an encoder the new classification head trains whole
too, as in the paper's GLUE runs (plus its weights and biases in the count). Implemented here
(backend "native"); nothing to merge, since the trained tensors live in the layers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.models.loading import CAUSAL, ENCODER
from methods._core.base import BuildContext, Method, MethodConfig
from methods._core.native import freeze, layer_linears, save_tensors, trainable_tensors
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class BitFitConfig(MethodConfig):
    """
    Attributes:
        target_modules: suffixes of the linear layers whose bias trains (added at zero where missing).
    """

    lr: float = 1e-3
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class BitFit(Method):
    name = "bitfit"
    config_class = BitFitConfig
    family = "selective"
    paper = (
        "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models "
        "(2021), arXiv:2106.10199"
    )
    backend = "native"
    mergeable = True
    model_kinds = (CAUSAL, ENCODER)

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        freeze(model)
        for _, _, _, linear in layer_linears(model, self.config.target_modules):
            if linear.bias is None:
                weight = linear.weight
                linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=weight.dtype, device=weight.device))
            linear.bias.requires_grad_(True)
        for name in context.head:
            model.get_submodule(name).requires_grad_(True)
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        return save_tensors(trainable_tensors(model), directory)
