"""CorDA: Context-Oriented Decomposition Adaptation of Large Language Models for Task-Aware
Parameter-Efficient Fine-tuning (Yang et al., 2024), arXiv:2406.05223.

What trains: a LoRA-shaped pair per targeted linear layer, initialised from the SVD of W C, where
C is the covariance of the layer's inputs on calibration data: with W C = U S V^T, the adapter is
B = U_r sqrt(S_r), A = sqrt(S_r) (V^T C^-1)_r and the base weight becomes the residual
W - (alpha / r) B A, so the model starts exactly at the base. `ipm` (instruction-previewed) takes
the r largest components, those the task data excites most, to learn fast; `kpm`
(knowledge-preserved) takes the r smallest and freezes the principal ones, to forget less.
Frozen: the residual weights. Calibration: `calibration_batches` batches, one sequence at a time
(peft's covariance hook expects batch size 1), padding dropped; of the task's training data, or of
general text (`calibration_data: general_text`), which suits kpm: the paper's kpm calibrates on the
knowledge to keep.
Delegates to `peft` (peft.tuners.lora.corda.preprocess_corda, then LoraConfig(init_lora_weights="corda")).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Iterator

import torch
from peft import LoraConfig
from peft.tuners.lora.config import CordaConfig
from peft.tuners.lora.corda import preprocess_corda
from torch import nn

from harness.models.loading import CAUSAL
from methods._core.base import BuildContext
from methods._core.peft_backed import check_targets
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig

MODES = ("ipm", "kpm")
CALIBRATION_DATA = ("task", "general_text")  # harness/run/calibration.py serves both


def take_batches(model: nn.Module, batches: Iterator[dict[str, torch.Tensor]], n: int) -> list[dict[str, torch.Tensor]]:
    """The first `n` batches of the calibration stream, on the model's device. Shared with LoRA-GA."""
    device = next(model.parameters()).device
    return [{k: v.to(device) for k, v in batch.items()} for batch in itertools.islice(batches, n)]


@dataclass
class CorDAConfig(LoRAConfig):
    """
    Attributes:
        mode: `ipm` (adapters from the largest context-weighted components) or `kpm` (from the
            smallest; the principal components stay frozen).
        calibration_data: `task` (training batches: the paper's ipm) or `general_text` (WikiText-2
            windows of the training length, through `forgetting.general_text`'s sources: knowledge
            to keep, as the paper's kpm calibrates on QA data such as TriviaQA).
        calibration_batches: batches whose inputs build each layer's covariance.
    """

    lr: float = 2e-5
    r: int = 128
    alpha: float = 128.0
    mode: str = "ipm"
    calibration_data: str = "task"
    calibration_batches: int = 64

    def validate(self) -> None:
        super().validate()
        self.require(self.mode in MODES, "mode", self.mode, f"choose one of {', '.join(MODES)}")
        self.require(self.calibration_data in CALIBRATION_DATA, "calibration_data", self.calibration_data,
                     f"choose one of {', '.join(CALIBRATION_DATA)}")
        self.require(self.calibration_batches >= 1, "calibration_batches", self.calibration_batches, "must be >= 1")


@register
class CorDA(LoRA):
    name = "corda"
    rewrites_base = True
    config_class = CorDAConfig
    paper = (
        "CorDA: Context-Oriented Decomposition Adaptation of Large Language Models for Task-Aware "
        "Parameter-Efficient Fine-tuning (2024), arXiv:2406.05223"
    )
    needs_calibration = True
    model_kinds = (CAUSAL,)  # calibration builds its peft config without the run's context: a causal LM's

    def peft_config(self, context: BuildContext | None = None) -> LoraConfig:
        # Also needed by `calibrate`, before any build context exists; without one LoRA's config is a causal LM's.
        return dataclasses.replace(
            super().peft_config(context), init_lora_weights="corda",
            corda_config=CordaConfig(corda_method=self.config.mode),
        )

    def calibration_data(self) -> str:
        return self.config.calibration_data

    def calibrate(self, model: nn.Module, batches: Iterator[dict[str, torch.Tensor]]) -> None:
        check_targets(model, self.config.target_modules)
        samples = take_batches(model, batches, self.config.calibration_batches)

        def run_model() -> None:
            for batch in samples:
                for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
                    model(input_ids=ids[mask.bool()].unsqueeze(0))

        preprocess_corda(model, self.peft_config(), run_model=run_model)
