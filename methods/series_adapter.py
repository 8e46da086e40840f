"""Series (bottleneck) adapter: Parameter-Efficient Transfer Learning for NLP (Houlsby et al., 2019),
arXiv:1902.00751, in the form LLM-Adapters (Hu et al., 2023, arXiv:2304.01933) applies to LLMs.

What trains: a bottleneck down (d -> m), non-linearity, up (m -> d) inserted after the output of
each targeted linear layer, y + up(act(down(y))); Houlsby places one after the attention output
projection and one after the FFN output, before the residual add. Init: down Kaiming-uniform, up
zero, so the model starts exactly at the base. No biases and no trained norms, as in LLM-Adapters.
Frozen: every base weight. Trainable count: 2 * m * out_features per targeted layer. Not
mergeable (the bottleneck is non-linear). Implemented here (backend "native"); the parallel adapter
reuses this module's pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from methods._core.base import BuildContext, Method, MethodConfig, SizeKnob
from methods._core.native import freeze, layer_linears, save_tensors, swap, trainable_tensors
from methods._core.registry import register

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


@dataclass
class AdapterConfig(MethodConfig):
    """
    Attributes:
        bottleneck: width m of the adapter's hidden layer.
        activation: non-linearity between the two projections (relu, tanh, gelu, silu).
        target_modules: suffixes of the linear layers that get an adapter.
    """

    lr: float = 3e-4
    bottleneck: int = 256
    activation: str = "tanh"
    target_modules: tuple[str, ...] = ("o_proj", "down_proj")

    def validate(self) -> None:
        self.require(self.bottleneck >= 1, "bottleneck", self.bottleneck, "must be >= 1")
        self.require(self.activation in ACTIVATIONS, "activation", self.activation,
                     f"choose one of {', '.join(ACTIVATIONS)}")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


class Bottleneck(nn.Module):
    """up(act(down(x))) on the device and dtype of `like`; the up-projection starts at zero, so the
    adapter outputs zeros until it has trained."""

    def __init__(self, d_in: int, d_out: int, width: int, activation: str, like: torch.Tensor):
        super().__init__()
        self.down = nn.Linear(d_in, width, bias=False, device=like.device, dtype=like.dtype)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(width, d_out, bias=False, device=like.device, dtype=like.dtype)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class SeriesAdapterLinear(nn.Module):
    def __init__(self, base: nn.Linear, width: int, activation: str):
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(base.out_features, base.out_features, width, activation, base.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.adapter(y)


class AdapterMethod(Method):
    """Wraps every targeted linear layer with `wrap(linear)`; saves the adapters' tensors."""

    family = "adapter"
    backend = "native"
    mergeable = False
    size_knob = SizeKnob("bottleneck", high="hidden_size")

    def wrap(self, linear: nn.Linear) -> nn.Module:
        raise NotImplementedError

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        freeze(model)
        for _, layer, name, linear in layer_linears(model, self.config.target_modules):
            swap(layer, name, self.wrap(linear))
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        return save_tensors(trainable_tensors(model), directory)


@register
class SeriesAdapter(AdapterMethod):
    name = "series_adapter"
    config_class = AdapterConfig
    paper = "Parameter-Efficient Transfer Learning for NLP (2019), arXiv:1902.00751"

    def wrap(self, linear: nn.Linear) -> nn.Module:
        return SeriesAdapterLinear(linear, self.config.bottleneck, self.config.activation)
