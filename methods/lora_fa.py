"""LoRA-FA: Memory-efficient Low-rank Adaptation for Large Language Models Fine-tuning
(Zhang et al., 2023), arXiv:2308.03303.

What trains: only the B matrices (out x r) of LoRA pairs; A (r x in) stays frozen at its random
init, so the activations stored for backward are the r-dimensional A @ x instead of x. B's gradient
is projected as in peft's LoRA-FA optimizer (g_B (A A^T)^-1 / scale^2), which makes the frozen-A
update the best rank-r approximation of full fine-tuning's. Init: A Kaiming-uniform, B zero, so
the model starts exactly at the base. Frozen: every base weight and every A.
Delegates to `peft` (LoraConfig and peft.optimizers.create_lorafa_optimizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft.optimizers import create_lorafa_optimizer
from torch import nn

from harness.models.loading import CAUSAL
from methods._core.base import BuildContext
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class LoRAFAConfig(LoRAConfig):
    lr: float = 2e-4


@register
class LoRAFA(LoRA):
    name = "lora_fa"
    model_kinds = (CAUSAL,)  # not set up for encoders: no conf/fit/<encoder>/ targets for it yet
    config_class = LoRAFAConfig
    paper = (
        "LoRA-FA: Memory-efficient Low-rank Adaptation for Large Language Models Fine-tuning (2023), "
        "arXiv:2308.03303"
    )

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        model = super().apply(model, context)
        # The optimizer freezes A too, but the run records its trainable count before the
        # optimizer exists: freezing here makes that count the B matrices only.
        for name, param in model.named_parameters():
            if "lora_A" in name:
                param.requires_grad_(False)
        return model

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        c = self.config
        return create_lorafa_optimizer(model, r=c.r, lora_alpha=c.alpha, lr=lr, weight_decay=c.weight_decay)
