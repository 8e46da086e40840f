"""Analytic training FLOPs (cost/flops/v1).

The usual 6 * N * T for training is full fine-tuning's count: forward 2N, backward 4N (2N for
gradients of activations, 2N for gradients of weights) per token. A PEFT method computes no
weight gradients for frozen weights, so v1 counts per token:

    forward 2 * N  +  activation gradients 2 * N  +  weight gradients 2 * N_trainable

where N is the number of parameters used in matrix products per token (every parameter except an
input embedding table that is not tied to the output head: a lookup costs no multiply-adds) and
N_trainable the trainable count. Methods without a backward pass (MeZO's zeroth-order step) count
their forward passes only: 2 * 2N per token. T counts the virtual tokens prompt methods add.
Left out, as in the usual formula: attention-score products (about 4 * layers * context * width
per token, a few percent at short sequences), norms and activations, the optimizer update.
Activation gradients are counted through the whole network even where no layer below trains.
"""

from __future__ import annotations

from torch import nn

from harness.core.metrics import Metric

VERSION = "cost/flops/v1"


def matmul_params(model: nn.Module) -> int:
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embeddings
    return total if tied else total - embeddings.numel()


def flops_per_token(model: nn.Module, trainable: int, zeroth_order: bool) -> float:
    n = matmul_params(model)
    return 4.0 * n if zeroth_order else 4.0 * n + 2.0 * trainable


def flops_metrics(model: nn.Module, trainable: int, zeroth_order: bool, tokens: int, sequences: int,
                  extra_tokens: int, steps: int, task: str) -> list[Metric]:
    """`train_flops` (whole training) and `flops_per_step` (its mean per optimizer step)."""
    processed = tokens + extra_tokens * sequences
    total = flops_per_token(model, trainable, zeroth_order) * processed
    return [Metric(task, "train_flops", total, None, 1, False, VERSION),
            Metric(task, "flops_per_step", total / max(steps, 1), None, steps, False, VERSION)]
