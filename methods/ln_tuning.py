"""LayerNorm tuning: Tuning LayerNorm in Attention: Towards Efficient Multi-Modal LLM Finetuning
(Zhao et al., 2023), arXiv:2312.11420.

What trains: a copy of every targeted normalisation layer (for Llama-style models, the RMSNorm gain
vectors before attention, before the MLP, and the final norm): hidden_size numbers per norm.
Init: the copies equal the originals, so the model starts exactly at the base. Frozen: everything
else, including the original norms (merging swaps the tuned copies in).
Delegates to `peft` (LNTuningConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import LNTuningConfig as PeftLNTuningConfig

from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register


@dataclass
class LNTuningConfig(MethodConfig):
    """
    Attributes:
        target_modules: suffixes of the normalisation layers that train.
    """

    lr: float = 2e-4
    target_modules: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm", "norm")

    def validate(self) -> None:
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class LNTuning(PeftMethod):
    name = "ln_tuning"
    config_class = LNTuningConfig
    family = "selective"
    paper = "Tuning LayerNorm in Attention: Towards Efficient Multi-Modal LLM Finetuning (2023), arXiv:2312.11420"
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftLNTuningConfig:
        return PeftLNTuningConfig(target_modules=list(self.config.target_modules), task_type="CAUSAL_LM")
