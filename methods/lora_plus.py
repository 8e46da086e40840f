"""LoRA+: Efficient Low Rank Adaptation of Large Models (Hayou, Ghosh & Yu, 2024), arXiv:2402.12354.

What trains: plain LoRA pairs (A: r x in, B: out x r; update (alpha / r) * B @ A), but B learns
`lr_ratio` times faster than A: with equal rates, feature learning is inefficient at large width
because B (zero at init) and A need different step sizes. Init: A Kaiming-uniform, B zero, so the
model starts exactly at the base. Frozen: every base weight.
Delegates to `peft` (LoraConfig, and the param groups of peft.optimizers.create_loraplus_optimizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft.optimizers import create_loraplus_optimizer
from torch import nn

from harness.models.loading import CAUSAL
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class LoRAPlusConfig(LoRAConfig):
    """
    Attributes:
        lr: the learning rate of the A matrices (and of everything else that trains).
        lr_ratio: learning rate of the B matrices divided by `lr` (the paper's lambda, >= 1).
    """

    lr: float = 1e-4
    lr_ratio: float = 16.0

    def validate(self) -> None:
        super().validate()
        self.require(self.lr_ratio >= 1.0, "lr_ratio", self.lr_ratio, "must be >= 1 (B learns at least as fast as A)")


@register
class LoRAPlus(LoRA):
    name = "lora_plus"
    model_kinds = (CAUSAL,)  # not set up for encoders: no conf/fit/<encoder>/ targets for it yet
    config_class = LoRAPlusConfig
    paper = "LoRA+: Efficient Low Rank Adaptation of Large Models (2024), arXiv:2402.12354"

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return create_loraplus_optimizer(
            model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=self.config.lr_ratio,
            loraplus_weight_decay=self.config.weight_decay,
        )
