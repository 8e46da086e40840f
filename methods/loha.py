"""LoHa: low-rank Hadamard product, from FedPara: Low-Rank Hadamard Product for
Communication-Efficient Federated Learning (Hyeon-Woo, Ye-Bin & Oh, 2021), arXiv:2108.06098, as
packaged for fine-tuning by LyCORIS (Navigating Text-To-Image Customization: From LyCORIS
Fine-Tuning to Model Evaluation, Yeh et al., 2023, arXiv:2309.14859).

What trains: per targeted linear layer, two LoRA-like pairs whose products are multiplied
elementwise: delta W = (alpha / r) * (W1a @ W1b) * (W2a @ W2b), each Wia: out x r, Wib: r x in,
so 2r(in + out) numbers reach rank up to r^2. Init: W2b zero, the others Kaiming-uniform, so the
model starts exactly at the base. Frozen: every base weight. Delegates to `peft` (LoHaConfig).
LoKr reuses this config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peft import LoHaConfig as PeftLoHaConfig
from peft import PeftConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class LoHaConfig(MethodConfig):
    """
    Attributes:
        r: rank of each factor pair.
        alpha: scaling numerator; the update is scaled by alpha / r.
        rank_dropout: dropout on the rows of the update during training.
        module_dropout: probability of skipping the whole adapter of a layer for a training step.
        target_modules: suffixes of the linear layers that get an adapter.
    """

    lr: float = 2e-4
    r: int = 32
    alpha: float = 32.0
    rank_dropout: float = 0.0
    module_dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        self.require(0.0 <= self.rank_dropout < 1.0, "rank_dropout", self.rank_dropout, "must be in [0, 1)")
        self.require(0.0 <= self.module_dropout < 1.0, "module_dropout", self.module_dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class LoHa(PeftMethod):
    name = "loha"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = LoHaConfig
    family = "lora"
    paper = "FedPara: Low-Rank Hadamard Product for Communication-Efficient Federated Learning (2021), arXiv:2108.06098"
    mergeable = True
    peft_config_class: type[PeftConfig] = PeftLoHaConfig

    def peft_options(self) -> dict[str, Any]:
        c = self.config
        return dict(r=c.r, alpha=c.alpha, rank_dropout=c.rank_dropout, module_dropout=c.module_dropout,
                    target_modules=list(c.target_modules), task_type="CAUSAL_LM")

    def peft_config(self, context: BuildContext) -> PeftConfig:
        return self.peft_config_class(**self.peft_options())
