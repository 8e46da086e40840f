"""GMT: Gradient-Mask Tuning, from "Enhancing Large Language Model Performance with Gradient-Based
Parameter Selection" (Li et al., 2024), arXiv:2406.15330.

What trains: every parameter, as in full fine-tuning, but at each optimizer step the entries of
each tensor's (accumulated, clipped) gradient whose magnitude is at or below that tensor's
`mask_ratio` quantile are zeroed before AdamW sees them, so only the parameters with the most
task signal move. The masking lives in the optimizer that `build_optimizer` returns. Init: the
pretrained weights. Implemented here (backend "native"); saving and merging are full
fine-tuning's (it changes the same tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from methods._core.registry import register
from methods.full import FullConfig, FullFineTuning


@dataclass
class GMTConfig(FullConfig):
    """
    Attributes:
        mask_ratio: fraction of each tensor's gradient entries, the smallest in magnitude, zeroed every step.
    """

    mask_ratio: float = 0.2

    def validate(self) -> None:
        self.require(0.0 <= self.mask_ratio < 1.0, "mask_ratio", self.mask_ratio, "must be in [0, 1)")


def mask_small_gradients_(grad: torch.Tensor, ratio: float) -> None:
    """Zero, in place, the entries at or below the `ratio` quantile of |grad|."""
    k = int(ratio * grad.numel())
    if k == 0:
        return
    magnitude = grad.abs()
    threshold = magnitude.flatten().kthvalue(k).values
    grad.masked_fill_(magnitude <= threshold, 0)


class GradientMaskedAdamW(torch.optim.AdamW):
    """AdamW that masks the small entries of every gradient before stepping."""

    def __init__(self, params: Iterable[nn.Parameter], mask_ratio: float, **kwargs):
        super().__init__(params, **kwargs)
        self.mask_ratio = mask_ratio

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    mask_small_gradients_(p.grad, self.mask_ratio)
        return super().step(closure)


@register
class GMT(FullFineTuning):
    name = "gmt"
    config_class = GMTConfig
    family = "selective"
    paper = (
        "Enhancing Large Language Model Performance with Gradient-Based Parameter Selection (2024), "
        "arXiv:2406.15330"
    )

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        params = self.trainable_parameters(model)
        return GradientMaskedAdamW(params, self.config.mask_ratio, lr=lr, weight_decay=self.config.weight_decay)
