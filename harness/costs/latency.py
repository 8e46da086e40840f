"""Inference latency per generated token (cost/latency/v1), for comparing methods at deployment:
merged adapters cost nothing extra, unmerged ones run their extra modules on every token, and
prompt methods lengthen every sequence by their virtual tokens.

Greedy `generate` at batch size 1 on a fixed prompt, exactly `n_tokens` new tokens (EOS ignored),
after one untimed warm-up call; the value is wall time / n_tokens in milliseconds, so the prompt's
prefill is spread over the tokens, as a user of a short answer would see it.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.metrics import Metric

VERSION = "cost/latency/v1"
PROMPT = "Question: A baker sells 12 loaves a day for 5 days. How many loaves does she sell?\nAnswer:"


@torch.no_grad()
def ms_per_token(model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device, n_tokens: int) -> float:
    model.eval()
    enc = tok(PROMPT, return_tensors="pt").to(device)

    def generate(n: int) -> None:
        model.generate(**enc, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=tok.pad_token_id)

    generate(2)  # warm-up: first-call allocations and kernel selection stay out of the number
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    generate(n_tokens)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1000.0 * (time.perf_counter() - start) / n_tokens


def latency_metric(task: str, which: str, value: float, n_tokens: int) -> Metric:
    """`which` is "unmerged" (as trained) or "merged" (adapters folded into the weights)."""
    return Metric(task, f"latency_ms_per_token_{which}", value, None, n_tokens, False, VERSION)
