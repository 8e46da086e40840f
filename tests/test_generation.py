"""Our row-dropping greedy decoder gives the same text as transformers' generate."""

from __future__ import annotations

import pytest
import torch

import methods
from harness.generation import _generate_hf, greedy_generate
from methods.base import BuildContext

PROMPTS = ["Question: what is 2 + 3?\nAnswer:", "Hello", "The capital of France is a city that",
           "Question: Tom has 5 apples and eats 2. How many are left?\nAnswer:", "1, 2, 3,"]


def _hf_reference(model, tok, prompts, max_new, stop):
    from harness.generation import cut_at_stop

    tok.padding_side = "left"
    out = []
    for p in prompts:  # one at a time: no padding at all in the reference
        enc = tok([p], return_tensors="pt")
        new = _generate_hf(model, tok, enc["input_ids"], enc["attention_mask"], max_new, stop)
        out.append(cut_at_stop(tok.decode(new[0], skip_special_tokens=True), stop))
    tok.padding_side = "right"
    return out


@pytest.mark.parametrize("method", [None, "lora"])
@pytest.mark.parametrize("stop", [[], ["\n", "the"]])
def test_matches_transformers_generate(tiny_model, method, stop):
    loaded = tiny_model()
    model = loaded.model
    if method:
        torch.manual_seed(0)
        model = methods.build({"name": method}).apply(model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
        for name, p in model.named_parameters():  # make the adapter matter
            if "lora_B" in name:
                p.data.normal_(0, 0.5)
    ours = greedy_generate(model, loaded.tokenizer, PROMPTS, 12, stop, batch_size=3, device=torch.device("cpu"))
    assert ours == _hf_reference(model, loaded.tokenizer, PROMPTS, 12, stop)
    assert any(len(o) > 0 for o in ours)


def test_prompt_tuning_generates_through_peft(tiny_model):
    loaded = tiny_model()
    model = methods.build({"name": "prompt_tuning", "num_virtual_tokens": 4}).apply(
        loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    out = greedy_generate(model, loaded.tokenizer, PROMPTS[:2], 5, [], batch_size=2, device=torch.device("cpu"))
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
