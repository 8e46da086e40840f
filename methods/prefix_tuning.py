"""Prefix tuning / P-Tuning v2: Prefix-Tuning: Optimizing Continuous Prompts for Generation (Li &
Liang, 2021), arXiv:2101.00190; P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning
Universally Across Scales and Tasks (Liu et al., 2021), arXiv:2110.07602.

What trains: `num_virtual_tokens` trainable key and value vectors prepended to the attention of
every layer (a past-key-values prefix): num_virtual_tokens * layers * 2 * kv_dim numbers, where
kv_dim = key/value heads x head size. `projection` off is P-Tuning v2 (the prefix is trained
directly); on is Li & Liang's reparameterisation, where an embedding of num_virtual_tokens x kv_dim
goes through a 2-layer tanh MLP (hidden `encoder_hidden_size`) that outputs the prefix, which they
found more stable. Init: Gaussian embedding (the prefix changes outputs from the start).
Frozen: the whole model. Not mergeable: the prefix costs attention length at inference.
Delegates to `peft` (PrefixTuningConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import PrefixTuningConfig as PeftPrefixTuningConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register


@dataclass
class PrefixTuningConfig(MethodConfig):
    """
    Attributes:
        num_virtual_tokens: prefix length per layer.
        projection: train through Li & Liang's MLP reparameterisation instead of directly.
        encoder_hidden_size: hidden width of that MLP; None uses kv_dim.
    """

    lr: float = 1e-2
    num_virtual_tokens: int = 20
    projection: bool = False
    encoder_hidden_size: int | None = None

    def validate(self) -> None:
        self.require(self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens, "must be >= 1")
        self.require(self.encoder_hidden_size is None or self.encoder_hidden_size >= 1, "encoder_hidden_size",
                     self.encoder_hidden_size, "must be >= 1 (or null for kv_dim)")


@register
class PrefixTuning(PeftMethod):
    name = "prefix_tuning"
    size_knob = SizeKnob("num_virtual_tokens", high=1024)
    config_class = PrefixTuningConfig
    family = "prompt"
    gradient_checkpointing_refusal = ("its prefixes enter each layer as a key/value cache, which checkpointed layers "
                                      "drop (transformers replays them without a cache)")
    paper = "Prefix-Tuning: Optimizing Continuous Prompts for Generation (2021), arXiv:2101.00190"
    target_option = None

    def peft_config(self, context: BuildContext) -> PeftPrefixTuningConfig:
        c = self.config
        return PeftPrefixTuningConfig(
            num_virtual_tokens=c.num_virtual_tokens,
            prefix_projection=c.projection,
            encoder_hidden_size=c.encoder_hidden_size,
            task_type="CAUSAL_LM",
        )
