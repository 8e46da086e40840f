"""QLoRA: Efficient Finetuning of Quantized LLMs (Dettmers, Pagnoni, Holtzman & Zettlemoyer, 2023),
arXiv:2305.14314.

What trains: LoRA pairs (A: r x in, B: out x r; update (alpha / r) * B @ A) on every targeted
linear layer of a base model whose linear weights are stored in 4 bits (NormalFloat4, block-wise,
with the block constants quantised again: "double quantisation") and dequantised to
`compute_dtype` on the fly; gradients flow through the frozen 4-bit weights into the adapters.
Init: A Kaiming-uniform, B zero, so the model starts exactly at the (quantised) base.
Frozen: every base weight. Needs a CUDA GPU and bitsandbytes; anywhere else `apply` stops with a
one-line error rather than silently training an unquantised model. Not merged before evaluation:
folding into 4-bit weights re-quantises them, which changes the function.
Delegates to `peft` (LoraConfig) over bitsandbytes' Linear4bit layers.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.models.loading import CAUSAL
from methods._core.base import BuildContext
from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig

QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class QLoRAConfig(LoRAConfig):
    """
    Attributes:
        quant_type: 4-bit data type of the base weights (`nf4`, the paper's, or `fp4`).
        double_quant: quantise the per-block quantisation constants too.
        compute_dtype: dtype the 4-bit weights are dequantised to for each matmul.
        gradient_checkpointing: recompute activations in backward, as the paper does to fit
            large models (memory for time; the numbers do not change).
    """

    lr: float = 2e-4
    r: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    gradient_checkpointing: bool = True

    def validate(self) -> None:
        super().validate()
        self.require(self.quant_type in QUANT_TYPES, "quant_type", self.quant_type,
                     f"choose one of {', '.join(QUANT_TYPES)}")
        self.require(self.compute_dtype in COMPUTE_DTYPES, "compute_dtype", self.compute_dtype,
                     f"choose one of {', '.join(COMPUTE_DTYPES)}")


@register
class QLoRA(LoRA):
    name = "qlora"
    config_class = QLoRAConfig
    paper = "QLoRA: Efficient Finetuning of Quantized LLMs (2023), arXiv:2305.14314"
    mergeable = False
    model_kinds = (CAUSAL,)  # it quantises every linear layer but an LM head: an encoder's new head too

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        device = next(model.parameters()).device
        has_bnb = importlib.util.find_spec("bitsandbytes") is not None
        if device.type != "cuda" or not has_bnb:
            raise HarnessError(
                f"method qlora needs a CUDA GPU and bitsandbytes for its 4-bit base weights; this run has device "
                f"{device.type}{'' if has_bnb else ' and no bitsandbytes'}: run it on a GPU after "
                "`pip install bitsandbytes`, or use method=lora"
            )
        self._quantize(model, device)
        if self.config.gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        return super().apply(model, context)

    def _quantize(self, model: nn.Module, device: torch.device) -> None:
        """Swap every linear layer except the output head for a 4-bit one, as the paper quantises
        the whole base model (transformers' loader would, too, but the harness loads in fp32)."""
        import bitsandbytes as bnb

        c = self.config
        head = model.get_output_embeddings()
        targets = [(name, module) for name, module in model.named_modules()
                   if isinstance(module, nn.Linear) and module is not head]
        for name, linear in targets:
            quantized = bnb.nn.Linear4bit(
                linear.in_features, linear.out_features, bias=linear.bias is not None,
                compute_dtype=getattr(torch, c.compute_dtype), compress_statistics=c.double_quant,
                quant_type=c.quant_type,
            )
            quantized.load_state_dict(linear.state_dict())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, quantized.to(device))  # quantised on the move to the GPU
