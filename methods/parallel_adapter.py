"""Parallel adapter: Towards a Unified View of Parameter-Efficient Transfer Learning (He et al., 2021),
arXiv:2110.04366, placed as LLM-Adapters (Hu et al., 2023, arXiv:2304.01933) places it in LLMs.

What trains: a bottleneck down (in -> m), non-linearity, up (m -> out) beside each targeted linear
layer, reading the layer's input: y = W x + s * up(act(down(x))), with He et al.'s scaling s.
LLM-Adapters puts it beside the attention value projection and the FFN output projection. Init:
down Kaiming-uniform, up zero, so the model starts exactly at the base. Frozen: every base weight.
Trainable count: m * (in_features + out_features) per targeted layer. Not mergeable (the
bottleneck is non-linear). Implemented here (backend "native"), on the series adapter's pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods._core.registry import register
from methods.series_adapter import AdapterConfig, AdapterMethod, Bottleneck


@dataclass
class ParallelAdapterConfig(AdapterConfig):
    """
    Attributes:
        scaling: factor s on the adapter's output.
    """

    activation: str = "relu"
    scaling: float = 4.0
    target_modules: tuple[str, ...] = ("v_proj", "down_proj")

    def validate(self) -> None:
        super().validate()
        self.require(self.scaling > 0, "scaling", self.scaling, "must be > 0")


class ParallelAdapterLinear(nn.Module):
    def __init__(self, base: nn.Linear, width: int, activation: str, scaling: float):
        super().__init__()
        self.base, self.scaling = base, scaling
        self.adapter = Bottleneck(base.in_features, base.out_features, width, activation, base.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.adapter(x)


@register
class ParallelAdapter(AdapterMethod):
    name = "parallel_adapter"
    config_class = ParallelAdapterConfig
    paper = "Towards a Unified View of Parameter-Efficient Transfer Learning (2021), arXiv:2110.04366"

    def wrap(self, linear: nn.Linear) -> nn.Module:
        c = self.config
        return ParallelAdapterLinear(linear, c.bottleneck, c.activation, c.scaling)
