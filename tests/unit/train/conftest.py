"""Fixtures of the training-loop tests."""

from __future__ import annotations

import itertools

import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.train import loop
from harness.train.encoding import collate, encode_pairs
from methods._core.base import BuildContext


@pytest.fixture
def lora_steps(tiny_model):
    """`lora_steps(options, steps, lr=1e-3, precision=None)`: LoRA r=2 on tiny-random-llama trained
    `steps` optimizer steps on one repeated two-item batch; returns the loop's result and the lr
    after each step."""

    def run(options: loop.StepOptions, steps: int, lr: float = 1e-3, precision=None):
        loaded = tiny_model()
        method = methods.build({"name": "lora", "r": 2})
        model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path, loaded.kind, loaded.head))
        batch = collate(encode_pairs(loaded.tokenizer, [("Question: 2+2?", " 4"), ("Question: 3+3?", " 6")], 32),
                        loaded.tokenizer.pad_token_id)
        lrs: list[float] = []
        result = loop.train(model, method, itertools.repeat(batch), options, lr, Budget("t", max_steps=steps),
                            torch.device("cpu"), 16.0, on_step=lambda step, loss, cur_lr: lrs.append(cur_lr),
                            precision=precision)
        return result, lrs

    return run
