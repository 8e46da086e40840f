"""MoLA: Higher Layers Need More LoRA Experts (Gao et al., 2024), arXiv:2402.08562.

What trains: beside each targeted linear layer, a mixture of E LoRA experts (A_e: r x in,
B_e: out x r) and a router (E x in, no bias). Each token goes to its top-k experts by router
logit, weighted by the softmax of those k logits: y = W x + (alpha / r) * sum_e g_e B_e A_e x.
E depends on depth: the decoder layers are cut into len(experts_per_group) equal groups, bottom to
top, and group j gets experts_per_group[j] experts (the paper's best "2-4-6-8" puts more experts
in higher layers). Init: A_e Kaiming-uniform and B_e zero as in LoRA, so the model starts exactly
at the base; router default Linear init. No load-balancing loss (the authors' code makes it
optional). Frozen: every base weight. Trainable count per targeted layer with E experts:
E * (r * (in + out) + in). Not mergeable (routing depends on the input). Implemented here
(backend "native").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods._core.base import BuildContext, Method, MethodConfig, SizeKnob
from methods._core.native import decoder_layers, freeze, layer_linears, save_tensors, swap, trainable_tensors
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class MoLAConfig(MethodConfig):
    """
    Attributes:
        r: rank of every LoRA expert.
        alpha: scaling numerator; expert outputs are scaled by alpha / r.
        dropout: dropout on the experts' input.
        experts_per_group: experts per layer in each equal group of layers, bottom to top.
        top_k: experts each token is routed to.
        target_modules: suffixes of the linear layers that get a mixture.
    """

    lr: float = 3e-4
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    experts_per_group: tuple[int, ...] = (2, 4, 6, 8)
    top_k: int = 2
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.experts_per_group) > 0 and min(self.experts_per_group) >= 1, "experts_per_group",
                     self.experts_per_group, "give at least one group, each with at least one expert")
        self.require(1 <= self.top_k <= min(self.experts_per_group), "top_k", self.top_k,
                     "must be between 1 and the smallest number of experts in a group")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


class MoLALinear(nn.Module):
    """A frozen linear layer plus a top-k routed mixture of LoRA experts."""

    def __init__(self, base: nn.Linear, experts: int, c: MoLAConfig):
        super().__init__()
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.base, self.experts, self.r, self.top_k = base, experts, c.r, c.top_k
        self.scaling = c.alpha / c.r
        self.router = nn.Linear(base.in_features, experts, bias=False, **factory)
        # All experts' A stacked row-wise and B column-wise: one matmul each for the whole mixture.
        self.a = nn.Parameter(torch.empty(experts * c.r, base.in_features, **factory))
        self.b = nn.Parameter(torch.zeros(base.out_features, experts * c.r, **factory))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))  # LoRA's A init; fan_in is in_features either way
        self.dropout = nn.Dropout(c.dropout)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token expert weights: softmax over the top-k router logits, zero elsewhere."""
        logits = self.router(x)
        top, index = logits.topk(self.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, index, top.softmax(dim=-1).to(logits.dtype))  # autocast softmax is fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.linear(self.dropout(x), self.a).unflatten(-1, (self.experts, self.r))
        mixed = (hidden * self.gates(x).unsqueeze(-1)).flatten(-2)
        return self.base(x) + self.scaling * F.linear(mixed, self.b)


def experts_for_layer(groups: tuple[int, ...], layer: int, n_layers: int) -> int:
    return groups[layer * len(groups) // n_layers]


@register
class MoLA(Method):
    name = "mola"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = MoLAConfig
    family = "lora"
    paper = "Higher Layers Need More LoRA Experts (2024), arXiv:2402.08562"
    backend = "native"
    mergeable = False

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        n_layers = len(decoder_layers(model))
        freeze(model)
        for i, layer, name, linear in layer_linears(model, c.target_modules):
            swap(layer, name, MoLALinear(linear, experts_for_layer(c.experts_per_group, i, n_layers), c))
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        return save_tensors(trainable_tensors(model), directory)
