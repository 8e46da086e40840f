"""rsLoRA: A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA (Kalajdzievski, 2023),
arXiv:2312.03732.

What trains: LoRA's pair (A: r x in, B: out x r) beside each targeted linear layer. Only the scale
differs: alpha / sqrt(r) instead of alpha / r, which keeps the update's magnitude (and so the
learning speed) stable as the rank grows, so large ranks pay off. Init: A Kaiming-uniform, B zero,
so the model starts exactly at the base. Frozen: every base weight.
Delegates to `peft` (LoraConfig(use_rslora=True)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from peft import LoraConfig

from harness.models.loading import CAUSAL
from methods._core.base import BuildContext
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class RsLoRAConfig(LoRAConfig):
    """
    Attributes:
        alpha: scaling numerator; the update is scaled by alpha / sqrt(r).
    """

    lr: float = 2e-4
    r: int = 64


@register
class RsLoRA(LoRA):
    name = "rslora"
    model_kinds = (CAUSAL,)  # not set up for encoders: no conf/fit/<encoder>/ targets for it yet
    config_class = RsLoRAConfig
    paper = "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA (2023), arXiv:2312.03732"

    def peft_config(self, context: BuildContext) -> LoraConfig:
        return dataclasses.replace(super().peft_config(context), use_rslora=True)
