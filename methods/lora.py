"""LoRA: Low-Rank Adaptation of Large Language Models (Hu et al., 2021), arXiv:2106.09685.

What trains: a rank-r pair (A: r x in, B: out x r) beside each targeted linear layer; the update is
(alpha / r) * B @ A. Init: A Kaiming-uniform, B zero, so the model starts exactly at the base.
Frozen: every base weight. Delegates to `peft` (LoraConfig). PiSSA and DoRA reuse this config.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

from harness.models.loading import CAUSAL, ENCODER
from methods._core.base import BuildContext, MethodConfig, SizeKnob, directory_bytes
from methods._core.peft_backed import PeftMethod, task_fields
from methods._core.registry import register

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoRAConfig(MethodConfig):
    """
    Attributes:
        r: rank of the update.
        alpha: scaling numerator; the update is scaled by alpha / r.
        dropout: dropout on the adapter input.
        target_modules: suffixes of the linear layers that get an adapter.
    """

    lr: float = 2e-4
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class LoRA(PeftMethod):
    name = "lora"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = LoRAConfig
    family = "lora"
    paper = "LoRA: Low-Rank Adaptation of Large Language Models (2021), arXiv:2106.09685"
    mergeable = True
    model_kinds = (CAUSAL, ENCODER)

    init_lora_weights: bool | str = True
    use_dora: bool = False
    # PiSSA, OLoRA, CorDA and LoRA-GA move part of each base weight into the adapter's init, so their
    # adapter alone does not restore the tuned model on the original base. Saving converts it (peft's
    # weight conversion) into a plain LoRA of rank 2r relative to the original weights, from a copy of
    # the adapter as initialised: adapter_bytes then counts what a user really has to ship.
    rewrites_base: bool = False

    def lora_alpha(self) -> float:
        return self.config.alpha

    def peft_config(self, context: BuildContext) -> LoraConfig:
        c = self.config
        return LoraConfig(
            r=c.r,
            lora_alpha=self.lora_alpha(),
            lora_dropout=c.dropout,
            target_modules=list(c.target_modules),
            init_lora_weights=self.init_lora_weights,
            use_dora=self.use_dora,
            **task_fields(context),
        )

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        model = super().apply(model, context)
        if self.rewrites_base:
            self._initial_adapter = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        if not self.rewrites_base:
            return super().save(model, directory)
        with tempfile.TemporaryDirectory() as tmp:
            initial = Path(tmp) / "initial"  # peft writes its config here and loads it back as an adapter
            initial.mkdir()
            save_file(self._initial_adapter, str(initial / "adapter_model.safetensors"))
            model.save_pretrained(directory, path_initial_model_for_weight_conversion=str(initial))
        return directory_bytes(directory)
