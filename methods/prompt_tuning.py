"""Prompt tuning: The Power of Scale for Parameter-Efficient Prompt Tuning (Lester et al., 2021),
arXiv:2104.08691.

What trains: `num_virtual_tokens` soft-prompt embeddings prepended to every input, initialised
from the embeddings of a text prompt (or randomly). Frozen: the whole model. Not mergeable: the
virtual tokens cost extra sequence length at inference. Delegates to `peft` (PromptTuningConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import PromptTuningConfig as PeftPromptTuningConfig
from peft import PromptTuningInit

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register


@dataclass
class PromptTuningConfig(MethodConfig):
    """
    Attributes:
        num_virtual_tokens: number of trainable soft-prompt vectors.
        init_text: text whose token embeddings initialise the prompt (repeated to length);
            empty for random init. The paper found vocabulary-based init better than random.
    """

    lr: float = 3e-2  # Lester et al.: 0.3 with Adafactor; 3e-2 is the AdamW recipe in PEFT docs
    num_virtual_tokens: int = 20
    init_text: str = "Solve the following problem step by step and give the final answer."

    def validate(self) -> None:
        self.require(self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens, "must be >= 1")


@register
class PromptTuning(PeftMethod):
    name = "prompt_tuning"
    size_knob = SizeKnob("num_virtual_tokens", high=1024)
    config_class = PromptTuningConfig
    family = "prompt"
    paper = "The Power of Scale for Parameter-Efficient Prompt Tuning (2021), arXiv:2104.08691"
    target_option = None

    def peft_config(self, context: BuildContext) -> PeftPromptTuningConfig:
        c = self.config
        from_text = bool(c.init_text)
        return PeftPromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=c.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if from_text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=c.init_text if from_text else None,
            tokenizer_name_or_path=context.tokenizer_path if from_text else None,
        )
