"""SORSA: Singular Values and Orthonormal Regularized Singular Vectors Adaptation of Large Language
Models (Cao, 2024), arXiv:2409.00055.

What trains: the principal part of each targeted weight, W_p = U_r diag(S_r) V_r^T, kept as three
tensors (U_r: out x r, S_r: r, V_r^T: r x in) initialised from the top-r singular triplets of W.
Frozen: the residual W_r = W - W_p, which replaces the base weight, so the model starts at the base.
The orthonormality regulariser gamma * mean(||U^T U - I||_F, ||V^T V - I||_F) over all adapted
layers is added to the loss through the `regularization` hook. The paper takes a separate plain
gradient step of size gamma for it; here it joins the task loss in the one AdamW step the harness
runs. Trainable count: r * (in + out + 1) per targeted layer. Mergeable: folding W_p back gives a
plain linear layer. Implemented here (backend "native").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, Method, MethodConfig, SizeKnob
from methods._core.native import freeze, layer_linears, merge_wrappers, save_tensors, swap, trainable_tensors
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class SORSAConfig(MethodConfig):
    """
    Attributes:
        r: number of singular triplets in the trainable principal part.
        gamma: weight of the orthonormality regulariser on U and V.
        target_modules: suffixes of the linear layers that get a SORSA adapter.
    """

    lr: float = 3e-5
    r: int = 128
    gamma: float = 4e-4
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(self.gamma >= 0, "gamma", self.gamma, "must be >= 0 (0 turns the regulariser off)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


class SORSALinear(nn.Module):
    """A frozen residual linear layer plus its trainable principal singular part."""

    def __init__(self, base: nn.Linear, r: int):
        super().__init__()
        weight = base.weight
        u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        self.base = base
        self.u = nn.Parameter(u[:, :r].contiguous().to(weight.dtype))
        self.s = nn.Parameter(s[:r].to(weight.dtype))
        self.vh = nn.Parameter(vh[:r].contiguous().to(weight.dtype))
        with torch.no_grad():
            weight -= self.principal()
        weight.requires_grad_(False)

    def principal(self) -> torch.Tensor:
        return (self.u * self.s) @ self.vh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.vh) * self.s, self.u)

    def orthonormality_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(self.s.numel(), device=self.s.device, dtype=self.s.dtype)
        return (torch.linalg.matrix_norm(self.u.T @ self.u - eye),
                torch.linalg.matrix_norm(self.vh @ self.vh.T - eye))

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += self.principal()
        return self.base


@register
class SORSA(Method):
    name = "sorsa"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = SORSAConfig
    family = "lora"
    paper = (
        "SORSA: Singular Values and Orthonormal Regularized Singular Vectors Adaptation of Large Language "
        "Models (2024), arXiv:2409.00055"
    )
    backend = "native"
    mergeable = True

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        r = self.config.r
        freeze(model)
        for _, layer, name, linear in layer_linears(model, self.config.target_modules):
            if r > min(linear.in_features, linear.out_features):
                raise HarnessError(
                    f"method.r={r} is invalid for this model: {name} is {linear.out_features} x "
                    f"{linear.in_features}, so the rank can be at most {min(linear.in_features, linear.out_features)}"
                )
            swap(layer, name, SORSALinear(linear, r))
        return model

    def regularization(self, model: nn.Module) -> torch.Tensor | None:
        if not self.config.gamma:
            return None
        terms = [t for m in model.modules() if isinstance(m, SORSALinear) for t in m.orthonormality_terms()]
        return self.config.gamma * torch.stack(terms).mean()

    def merge(self, model: nn.Module) -> None:
        merge_wrappers(model, SORSALinear)

    def save(self, model: nn.Module, directory: Path) -> int:
        return save_tensors(trainable_tensors(model), directory)
