"""PaCA: Partial Connection Adaptation for Efficient Fine-Tuning (Woo et al., 2025), arXiv:2503.01905.

What trains: in each targeted linear layer, `r` randomly chosen input columns of the pretrained
weight (the connections from r input features), in place; no adapter is added. Frozen: every other
weight. As in the authors' code the trained columns are stored divided by scale = alpha / r and
used multiplied by it, which scales their effective step size. The columns are lifted into a dense
block (`ColumnBlockLinear`, shared with S2FT) so backward keeps only the selected activations, the
paper's memory saving. The selection draws from the global RNG, which the harness seeds with the
run seed before `apply`. Trainable count: r * out_features per targeted layer. Mergeable: the
blocks go back into their columns. Implemented here (backend "native").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.native import ColumnBlockLinear, ColumnBlockMethod, freeze, layer_linears, swap
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class PaCAConfig(MethodConfig):
    """
    Attributes:
        r: number of input columns trained per targeted layer.
        alpha: scale numerator; the trained columns act through alpha / r times their stored values.
        target_modules: suffixes of the linear layers whose columns train.
    """

    lr: float = 1e-4
    r: int = 16
    alpha: float = 64.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "train at least one column per layer")
        self.require(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class PaCA(ColumnBlockMethod):
    name = "paca"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = PaCAConfig
    paper = "PaCA: Partial Connection Adaptation for Efficient Fine-Tuning (2025), arXiv:2503.01905"

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        freeze(model)
        for _, layer, name, linear in layer_linears(model, c.target_modules):
            if c.r > linear.in_features:
                raise HarnessError(
                    f"method.r={c.r} is invalid for this model: {name} has only {linear.in_features} input columns"
                )
            columns = torch.randperm(linear.in_features)[: c.r].sort().values
            swap(layer, name, ColumnBlockLinear(linear, columns, scale=c.alpha / c.r))
        return model
