"""Our row-dropping greedy decoder gives the same text as transformers' generate; beam search is
transformers' own."""

from __future__ import annotations

import pytest
import torch

import methods
from harness.scoring.generation import _generate_hf, _NgramIndex, generate_answers
from methods._core.base import BuildContext

PROMPTS = ["Question: what is 2 + 3?\nAnswer:", "Hello", "The capital of France is a city that",
           "Question: Tom has 5 apples and eats 2. How many are left?\nAnswer:", "1, 2, 3,"]


def _hf_reference(model, tok, prompts, max_new, stop, num_beams=1):
    from harness.scoring.generation import cut_at_stop

    tok.padding_side = "left"
    out = []
    for p in prompts:  # one at a time: no padding at all in the reference
        enc = tok([p], return_tensors="pt")
        new = _generate_hf(model, tok, enc["input_ids"], enc["attention_mask"], max_new, stop, num_beams)
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
    ours = generate_answers(model, loaded.tokenizer, PROMPTS, 12, stop, batch_size=3, device=torch.device("cpu"))
    assert ours == _hf_reference(model, loaded.tokenizer, PROMPTS, 12, stop)
    assert any(len(o) > 0 for o in ours)


def test_beam_search_is_transformers_beam_search(tiny_model):
    loaded = tiny_model()
    cpu = torch.device("cpu")
    beams = generate_answers(loaded.model, loaded.tokenizer, PROMPTS, 12, ["\n"], batch_size=3, device=cpu, num_beams=3)
    assert beams == _hf_reference(loaded.model, loaded.tokenizer, PROMPTS, 12, ["\n"], num_beams=3)
    greedy = generate_answers(loaded.model, loaded.tokenizer, PROMPTS, 12, ["\n"], batch_size=3, device=cpu)
    assert beams != greedy  # the beams were searched


def test_prompt_tuning_generates_through_peft(tiny_model):
    loaded = tiny_model()
    model = methods.build({"name": "prompt_tuning", "num_virtual_tokens": 4}).apply(
        loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    out = generate_answers(model, loaded.tokenizer, PROMPTS[:2], 5, [], batch_size=2, device=torch.device("cpu"))
    assert len(out) == 2 and all(isinstance(o, str) for o in out)


def test_ngram_index_drafts_what_followed_the_latest_match():
    index = _NgramIndex([5, 6, 7, 8, 5, 6])
    assert index.draft(3) == [7, 8, 5]  # the tail (5, 6) occurred at the start, followed by 7, 8, 5
    index.extend([9, 5, 6])
    assert index.draft(3) == [9, 5, 6]  # (9, 5, 6) is new; (5, 6) last occurred before 9
    assert index.draft(1) == [9]
    assert _NgramIndex([1, 2, 3]).draft(4) == []  # the tail never occurred before


def test_drafts_confirmed_by_the_model_save_forward_passes(tiny_model):
    """A random model repeats itself, so prompt lookup drafts its own output: fewer decoding
    passes than tokens, and still the text of one-token-at-a-time greedy decoding."""
    loaded = tiny_model()
    widths = []
    hook = loaded.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        ours = generate_answers(loaded.model, loaded.tokenizer, PROMPTS, 24, [], batch_size=5, device=torch.device("cpu"))
    finally:
        hook.remove()
    assert ours == _hf_reference(loaded.model, loaded.tokenizer, PROMPTS, 24, [])
    assert max(widths[1:]) > 1 and len(widths) - 1 < 24  # drafts were fed; fewer passes than new tokens
