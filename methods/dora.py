"""DoRA: Weight-Decomposed Low-Rank Adaptation (Liu et al., 2024), arXiv:2402.09353.

What trains: a LoRA pair for the direction plus a magnitude vector (one scalar per output row),
initialised to the row norms of the base weight, so the model starts exactly at the base.
Frozen: base weights. Delegates to `peft` (LoraConfig(use_dora=True)).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class DoRAConfig(LoRAConfig):
    lr: float = 2e-4  # DoRA paper, commonsense setup (Table 8): 1e-4 to 2e-4


@register
class DoRA(LoRA):
    name = "dora"
    config_class = DoRAConfig
    paper = "DoRA: Weight-Decomposed Low-Rank Adaptation (2024), arXiv:2402.09353"
    use_dora = True
