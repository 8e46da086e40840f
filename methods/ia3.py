"""IA3: Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning
(Liu et al., 2022), arXiv:2205.05638.

What trains: learned vectors that rescale the keys, values and the feed-forward activations
(the input of `down_proj`); initialised to ones, so the model starts exactly at the base.
Frozen: every base weight. Delegates to `peft` (IA3Config).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import IA3Config as PeftIA3Config

from harness.models.loading import CAUSAL, ENCODER
from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod, task_fields
from methods._core.registry import register


@dataclass
class IA3Config(MethodConfig):
    """
    Attributes:
        target_modules: layers whose output (or input, for feed-forward ones) is rescaled.
        feedforward_modules: the subset of targets rescaled on their input.
    """

    lr: float = 3e-3  # IA3 paper, Sec. 3.3: Adafactor lr 3e-3; PEFT's comparison uses similar
    target_modules: tuple[str, ...] = ("k_proj", "v_proj", "down_proj")
    feedforward_modules: tuple[str, ...] = ("down_proj",)

    def validate(self) -> None:
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")
        extra = set(self.feedforward_modules) - set(self.target_modules)
        self.require(not extra, "feedforward_modules", self.feedforward_modules, "must be a subset of target_modules")


@register
class IA3(PeftMethod):
    name = "ia3"
    config_class = IA3Config
    family = "scaling"
    paper = (
        "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning "
        "(2022), arXiv:2205.05638"
    )
    mergeable = True
    model_kinds = (CAUSAL, ENCODER)

    def peft_config(self, context: BuildContext) -> PeftIA3Config:
        return PeftIA3Config(
            target_modules=list(self.config.target_modules),
            feedforward_modules=list(self.config.feedforward_modules),
            **task_fields(context),
        )
