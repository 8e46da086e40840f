"""S2FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured Sparsity
(Yang et al., 2024), arXiv:2412.06289.

What trains: in every decoder layer, the output-projection weights of a few randomly selected
attention heads (the head_dim input columns of `o_proj` that each chosen head feeds) and of a few
randomly selected FFN channels (the input columns of `down_proj`), `head_ratio` and
`channel_ratio` of them per layer. Everything else is frozen. Init: the pretrained values.

The paper co-permutes coupled weights so the selected rows/columns become contiguous and trains
that slice in place. Here each layer's selected columns are instead lifted into their own dense
trainable block (`ColumnBlockLinear`, shared with PaCA): the trainable set, the function and the
dense-matmul cost are the same, and it also works with grouped-query attention, where permuting
query heads would break their fixed mapping onto shared key/value heads. The selection draws from
the global RNG, which the harness seeds with the run seed before `apply`.

Trainable count per layer: round(head_ratio * heads) * head_dim * hidden
+ round(channel_ratio * intermediate) * hidden. Mergeable: the blocks go back into their columns.
Implemented here (backend "native").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, MethodConfig
from methods._core.native import ColumnBlockLinear, ColumnBlockMethod, decoder_layers, freeze, swap
from methods._core.registry import register


@dataclass
class S2FTConfig(MethodConfig):
    """
    Attributes:
        head_ratio: fraction of attention heads per layer whose `o_proj` columns train.
        channel_ratio: fraction of FFN channels per layer whose `down_proj` columns train.
        attention_output: name of the attention output projection inside a decoder layer.
        ffn_output: name of the FFN output projection inside a decoder layer.
    """

    lr: float = 1e-3
    head_ratio: float = 0.0
    channel_ratio: float = 0.03
    attention_output: str = "self_attn.o_proj"
    ffn_output: str = "mlp.down_proj"

    def validate(self) -> None:
        for option in ("head_ratio", "channel_ratio"):
            value = getattr(self, option)
            self.require(0.0 <= value <= 1.0, option, value, "must be a fraction in [0, 1]")
        self.require(self.head_ratio > 0 or self.channel_ratio > 0, "channel_ratio", self.channel_ratio,
                     "head_ratio and channel_ratio cannot both be 0 (nothing would train)")


def selected_count(ratio: float, total: int) -> int:
    """How many of `total` units a ratio selects: at least one whenever the ratio is positive."""
    return max(1, round(ratio * total)) if ratio > 0 else 0


def projection(layer: nn.Module, option: str, path: str) -> nn.Linear:
    module = dict(layer.named_modules()).get(path)
    if not isinstance(module, nn.Linear):
        linears = sorted(name for name, m in layer.named_modules() if isinstance(m, nn.Linear))
        raise HarnessError(
            f"method.{option}={path!r} names no linear layer of the decoder layers; they have: {', '.join(linears)}"
        )
    return module


@register
class S2FT(ColumnBlockMethod):
    name = "s2ft"
    config_class = S2FTConfig
    paper = "S2FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured Sparsity (2024), arXiv:2412.06289"

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        n_heads = model.config.num_attention_heads
        freeze(model)
        for layer in decoder_layers(model):
            if c.head_ratio > 0:
                o_proj = projection(layer, "attention_output", c.attention_output)
                head_dim = o_proj.in_features // n_heads
                heads = torch.randperm(n_heads)[: selected_count(c.head_ratio, n_heads)]
                columns = (heads[:, None] * head_dim + torch.arange(head_dim)).flatten()
                swap(layer, c.attention_output, ColumnBlockLinear(o_proj, columns.sort().values))
            if c.channel_ratio > 0:
                down = projection(layer, "ffn_output", c.ffn_output)
                channels = torch.randperm(down.in_features)[: selected_count(c.channel_ratio, down.in_features)]
                swap(layer, c.ffn_output, ColumnBlockLinear(down, channels.sort().values))
        return model
