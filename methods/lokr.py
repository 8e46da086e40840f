"""LoKr: low-rank Kronecker product adaptation, from Navigating Text-To-Image Customization: From
LyCORIS Fine-Tuning to Model Evaluation (Yeh et al., 2023), arXiv:2309.14859.

What trains: per targeted linear layer, delta W = (alpha / r) * W1 kron W2, with out = a * b and
in = c * d split into near-square factors (or `decompose_factor`): W1 is a dense a x c matrix and W2
a b x d matrix, itself factored as (b x r) @ (r x d) when r < max(b, d) / 2, else dense. A few
thousand numbers give a full-rank update. Init: W1 zero, W2 Kaiming-uniform, so the model starts
exactly at the base. Frozen: every base weight. Delegates to `peft` (LoKrConfig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peft import LoKrConfig as PeftLoKrConfig

from methods._core.base import SizeKnob
from methods._core.registry import register
from methods.loha import LoHa, LoHaConfig


@dataclass
class LoKrConfig(LoHaConfig):
    """
    Attributes:
        r: rank of W2's factorisation (W2 is dense when r >= max(b, d) / 2).
        decompose_factor: -1 splits each dimension into its most nearly square factor pair;
            f > 0 makes the first factor f where f divides the dimension.
    """

    lr: float = 2e-4
    r: int = 32
    alpha: float = 32.0
    decompose_factor: int = -1

    def validate(self) -> None:
        super().validate()
        self.require(self.decompose_factor == -1 or self.decompose_factor >= 1, "decompose_factor",
                     self.decompose_factor, "must be -1 (near-square) or a positive factor")


@register
class LoKr(LoHa):
    name = "lokr"
    size_knob = SizeKnob("r", high=64, monotone=False)  # small ranks use a full-rank factor
    config_class = LoKrConfig
    paper = (
        "Navigating Text-To-Image Customization: From LyCORIS Fine-Tuning to Model Evaluation (2023), "
        "arXiv:2309.14859"
    )
    peft_config_class = PeftLoKrConfig

    def peft_options(self) -> dict[str, Any]:
        return {**super().peft_options(), "decompose_factor": self.config.decompose_factor}
