"""VB-LoRA: Extreme Parameter Efficient Fine-Tuning with Vector Banks (Li, Han & Ji, 2024),
arXiv:2405.15179.

What trains: one bank of `num_vectors` vectors of length `vector_length`, shared by every layer,
plus per targeted linear layer the logits that pick them: LoRA's A (r x in) and B (out x r) are cut
into sub-vectors of length vector_length, each a softmax-weighted mix of its top-k bank vectors.
Trainable: num_vectors * vector_length once, plus r * num_vectors * (in + out) / vector_length
logits per layer (only the top-k need saving). Init: bank uniform in +-0.02, logits Gaussian, so
the update is small but not zero: the model does not start exactly at the base.
Frozen: every base weight. Delegates to `peft` (VBLoRAConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import VBLoRAConfig as PeftVBLoRAConfig
from torch import nn

from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR
from methods.oft import require_divisible


@dataclass
class VBLoRAConfig(MethodConfig):
    """
    Attributes:
        r: rank of the composed A and B.
        num_vectors: vectors in the shared bank.
        vector_length: length of each bank vector; must divide every target's in and out features.
        topk: bank vectors mixed into each sub-vector.
        dropout: dropout on the adapter input.
        target_modules: suffixes of the linear layers that get an update.
    """

    lr: float = 1e-3
    r: int = 4
    num_vectors: int = 2048
    vector_length: int = 64
    topk: int = 2
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(self.vector_length >= 1, "vector_length", self.vector_length, "must be >= 1")
        self.require(1 <= self.topk <= self.num_vectors, "topk", self.topk,
                     f"must be in [1, num_vectors={self.num_vectors}]")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class VBLoRA(PeftMethod):
    name = "vblora"
    config_class = VBLoRAConfig
    family = "lora"
    paper = "VB-LoRA: Extreme Parameter Efficient Fine-Tuning with Vector Banks (2024), arXiv:2405.15179"
    mergeable = True

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        require_divisible(model, c.target_modules, c.vector_length, f"method.vector_length={c.vector_length}",
                          ("in_features", "out_features"))
        return super().apply(model, context)

    def peft_config(self, context: BuildContext) -> PeftVBLoRAConfig:
        c = self.config
        return PeftVBLoRAConfig(
            r=c.r,
            num_vectors=c.num_vectors,
            vector_length=c.vector_length,
            topk=c.topk,
            vblora_dropout=c.dropout,
            target_modules=list(c.target_modules),
            task_type="CAUSAL_LM",
        )
