"""OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models (Büyükakyüz, 2024),
arXiv:2406.01775.

What trains: a LoRA-shaped pair initialised from the QR decomposition of each targeted weight
(B = the first r columns of Q, orthonormal; A = the first r rows of R); the base weight is replaced
by the residual W - (alpha / r) * B @ A, so the model starts exactly at the base while training
moves in an orthonormal basis of the weight's own column space. Frozen: the residual weights.
Delegates to `peft` (LoraConfig(init_lora_weights="olora")).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.models.loading import CAUSAL
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class OLoRAConfig(LoRAConfig):
    lr: float = 2e-4
    r: int = 32


@register
class OLoRA(LoRA):
    name = "olora"
    model_kinds = (CAUSAL,)  # not set up for encoders: no conf/fit/<encoder>/ targets for it yet
    rewrites_base = True
    config_class = OLoRAConfig
    paper = "OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models (2024), arXiv:2406.01775"
    init_lora_weights = "olora"
