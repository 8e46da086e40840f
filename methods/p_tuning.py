"""P-tuning: GPT Understands, Too (Liu et al., 2021), arXiv:2103.10385.

What trains: `num_virtual_tokens` continuous prompt embeddings inserted before the input, produced
by a small prompt encoder from trainable seed embeddings (num_virtual_tokens x hidden): the paper's
bidirectional LSTM (2 layers) followed by a 2-layer ReLU MLP, or a 3-layer ReLU MLP. The encoder
ties the prompt tokens together, which the paper found to train better than free embeddings.
Init: PyTorch defaults (the prompt changes outputs from the start). Frozen: the whole model.
Not mergeable: the prompt costs sequence length at inference. Delegates to `peft`
(PromptEncoderConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import PromptEncoderConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register

ENCODERS = ("LSTM", "MLP")


@dataclass
class PTuningConfig(MethodConfig):
    """
    Attributes:
        num_virtual_tokens: prompt length.
        encoder: `LSTM` (the paper's bidirectional LSTM + MLP head) or `MLP` (3 linear layers).
        encoder_hidden_size: hidden width of the encoder; None uses the model's hidden size.
    """

    lr: float = 1e-5
    num_virtual_tokens: int = 20
    encoder: str = "LSTM"
    encoder_hidden_size: int | None = None

    def validate(self) -> None:
        self.require(self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens, "must be >= 1")
        self.require(self.encoder in ENCODERS, "encoder", self.encoder, f"choose one of {', '.join(ENCODERS)}")
        self.require(self.encoder_hidden_size is None or self.encoder_hidden_size >= 1, "encoder_hidden_size",
                     self.encoder_hidden_size, "must be >= 1 (or null for the model's hidden size)")


@register
class PTuning(PeftMethod):
    name = "p_tuning"
    size_knob = SizeKnob("num_virtual_tokens", high=1024)
    config_class = PTuningConfig
    family = "prompt"
    paper = "GPT Understands, Too (2021), arXiv:2103.10385"
    target_option = None

    def peft_config(self, context: BuildContext) -> PromptEncoderConfig:
        c = self.config
        return PromptEncoderConfig(
            num_virtual_tokens=c.num_virtual_tokens,
            encoder_reparameterization_type=c.encoder,
            encoder_hidden_size=c.encoder_hidden_size,
            task_type="CAUSAL_LM",
        )
