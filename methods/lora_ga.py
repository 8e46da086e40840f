"""LoRA-GA: Low-Rank Adaptation with Gradient Approximation (Wang, Yu & Li, 2024), arXiv:2407.05000.

What trains: a LoRA pair per targeted linear layer, initialised so that the first step moves like
full fine-tuning: with G the layer's weight gradient averaged over calibration batches and
G = U S V^T, A takes the top r right singular vectors and B the next r left ones (scaled; the
"stable" scale keeps update sizes independent of width), and the base weight becomes the residual
W - (alpha / r) B A, so the model starts exactly at the base. Frozen: the residual weights.
Calibration: `calibration_batches` training batches, one forward and backward pass each.
Delegates to `peft` (peft.tuners.lora.loraga.preprocess_loraga, then
LoraConfig(init_lora_weights="lora_ga", lora_ga_config=...)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import torch
from peft import LoraConfig
from peft.tuners.lora.config import LoraGAConfig as PeftLoraGAConfig
from peft.tuners.lora.loraga import preprocess_loraga
from torch import nn

from harness.models.loading import CAUSAL
from methods._core.base import BuildContext
from methods._core.peft_backed import check_targets
from methods._core.registry import register
from methods.corda import take_batches
from methods.lora import LoRA, LoRAConfig

DIRECTIONS = ("ArB2r", "A2rBr", "ArBr", "random")
SCALES = ("stable", "weight_svd", "gd_scale", "unit")


@dataclass
class LoRAGAConfig(LoRAConfig):
    """
    Attributes:
        calibration_batches: training batches whose gradients are averaged.
        direction: which singular vectors go to A and B (ArB2r: A the first r, B the next r).
        scale: how the initial pair is scaled (`stable`: by out^(1/4) / sqrt(stable_gamma)).
        stable_gamma: the gamma of the `stable` scale.
    """

    lr: float = 2e-5
    calibration_batches: int = 32
    direction: str = "ArB2r"
    scale: str = "stable"
    stable_gamma: int = 16

    def validate(self) -> None:
        super().validate()
        self.require(self.calibration_batches >= 1, "calibration_batches", self.calibration_batches, "must be >= 1")
        self.require(self.direction in DIRECTIONS, "direction", self.direction, f"choose one of {', '.join(DIRECTIONS)}")
        self.require(self.scale in SCALES, "scale", self.scale, f"choose one of {', '.join(SCALES)}")
        self.require(self.stable_gamma >= 1, "stable_gamma", self.stable_gamma, "must be >= 1")


@register
class LoRAGA(LoRA):
    name = "lora_ga"
    rewrites_base = True
    config_class = LoRAGAConfig
    paper = "LoRA-GA: Low-Rank Adaptation with Gradient Approximation (2024), arXiv:2407.05000"
    needs_calibration = True
    model_kinds = (CAUSAL,)  # calibration builds its peft config without the run's context: a causal LM's

    def peft_config(self, context: BuildContext | None = None) -> LoraConfig:
        # Also needed by `calibrate`, before any build context exists; without one LoRA's config is a causal LM's.
        c = self.config
        return dataclasses.replace(
            super().peft_config(context), init_lora_weights="lora_ga",
            lora_ga_config=PeftLoraGAConfig(direction=c.direction, scale=c.scale, stable_gamma=c.stable_gamma),
        )

    def calibrate(self, model: nn.Module, batches: Iterator[dict[str, torch.Tensor]]) -> None:
        check_targets(model, self.config.target_modules)
        samples = take_batches(model, batches, self.config.calibration_batches)

        def train_step() -> None:  # peft averages the accumulated gradient over these backward passes
            for batch in samples:
                model(**batch).loss.backward()

        preprocess_loraga(model, self.peft_config(), train_step)
