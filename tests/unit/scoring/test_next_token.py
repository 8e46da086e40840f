"""The one-token fast path of choice scoring against the general path and a plain forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from harness.core.paths import CONF_DIR
from harness.scoring import loglik, next_token
from harness.scoring.loglik import ChoiceScore, best_choice, choice_log_likelihoods, encode_request
from harness.tasks.mmlu import MMLU

CPU = torch.device("cpu")


@torch.no_grad()
def reference(model, tok, context, choice) -> ChoiceScore:
    """One unpadded forward pass over context + choice, no cache, no batching."""
    ctx, cont = encode_request(tok, context, choice)
    logprobs = F.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0, len(ctx) - 1 : -1].float(), dim=-1)
    target = torch.tensor(cont)
    return ChoiceScore(float(logprobs.gather(1, target[:, None]).sum()), bool((logprobs.argmax(-1) == target).all()), len(cont))


@pytest.fixture(scope="module")
def tiny(tiny_model):
    loaded = tiny_model()
    return loaded.model.eval(), loaded.tokenizer


def mmlu_requests(test_data, shots: int) -> tuple[list[str], list[list[str]]]:
    cfg = {**yaml.safe_load((CONF_DIR / "task" / "mmlu.yaml").read_text()), "num_fewshot": shots, "n_eval": None,
           "subjects": ["anatomy", "abstract_algebra", "virology"]}
    task = MMLU.of(cfg)
    items = task.load({"dir": str(test_data), "order": ["local"]}).eval
    return [task.context(x) for x in items], [task.choices(x) for x in items]


@pytest.fixture
def fast_calls(monkeypatch):
    """The contexts of each batch the fast path scored."""
    calls = []

    def spy(model, contexts, *args):
        calls.append(list(contexts))
        return next_token.next_token_logprobs(model, contexts, *args)

    monkeypatch.setattr(loglik, "next_token_logprobs", spy)
    return calls


@pytest.mark.parametrize("shots, custom_masks, fast_share", [(0, True, 1.0), (2, True, 0.0), (2, False, 1.0)])
def test_fast_path_scores_mmlu_items_as_the_general_path(tiny, test_data, shots, custom_masks, fast_share,
                                                         fast_calls, monkeypatch):
    """0-shot items take the fast path. k-shot batches (a long shared prefix) are packed by the general
    path when the model takes a custom mask, and take the fast path when it does not (flash attention)."""
    model, tok = tiny
    monkeypatch.setattr(loglik, "_takes_custom_masks", lambda m: custom_masks)
    contexts, choices = mmlu_requests(test_data, shots)
    fast = choice_log_likelihoods(model, tok, contexts, choices, 5, CPU)
    general = choice_log_likelihoods(model, tok, contexts, choices, 5, CPU, fast_path=False)
    assert sum(map(len, fast_calls)) == fast_share * len(contexts) and len(contexts) >= 20
    for a, b in zip(fast, general):
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-4)
        assert [(s.is_greedy, s.n_tokens) for s in a] == [(s.is_greedy, s.n_tokens) for s in b]
        assert [s.n_tokens for s in a] == [1, 1, 1, 1]
        assert best_choice(a) == best_choice(b)


def test_one_forward_row_per_question_and_the_shared_description_runs_once(tiny, test_data, fast_calls):
    model, tok = tiny
    contexts, choices = mmlu_requests(test_data, 0)
    calls = []  # (input shape, whether it is a shared prefix: run for its cache, before the rows)
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append((tuple(kwargs["input_ids"].shape), kwargs.get("cache") is None and kwargs["use_cache"])),
        with_kwargs=True)
    try:
        choice_log_likelihoods(model, tok, contexts, choices, 8, CPU)
    finally:
        hook.remove()
    rows = [shape for shape, is_prefix in calls if not is_prefix]
    prefixes = [shape for shape, is_prefix in calls if is_prefix]
    assert len(rows) == len(fast_calls) and sum(r for r, _ in rows) == len(contexts)  # one row per question, not per choice
    description = len(tok.encode("The following are multiple choice questions (with answers) about"))
    assert prefixes and all(n == 1 and width >= description for n, width in prefixes)  # the description, once per batch


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_fast_path_equals_a_plain_forward_per_choice(tiny, attention, fast_calls):
    """Contexts sharing a long prefix (run once, its cache reused), one ending in a space that moves
    to the continuation (" A" stays one token), and one with no shared prefix."""
    model, tok = tiny
    model.set_attn_implementation(attention)
    intro = "Answer the following questions about geography with a single letter.\n\n"
    contexts = [intro + "Which city is the capital of France?\nAnswer:", intro + "Is Lyon a river?\nAnswer: ", "Pick one:"]
    choices = [[" A", " B", " Paris"], ["A", "B"], [" yes", " no"]]
    try:
        scores = choice_log_likelihoods(model, tok, contexts, choices, 3, CPU)
    finally:
        model.set_attn_implementation("sdpa")
    assert [len(c) for c in fast_calls] == [3]
    for context, row_choices, row in zip(contexts, choices, scores):
        for choice, got in zip(row_choices, row):
            want = reference(model, tok, context, choice)
            assert (got.is_greedy, got.n_tokens) == (want.is_greedy, want.n_tokens) == (want.is_greedy, 1)
            assert got.logprob == pytest.approx(want.logprob, abs=1e-4)


def test_a_multi_token_continuation_takes_the_general_path(tiny, fast_calls):
    model, tok = tiny
    contexts = ["The capital of France is", "2 + 2 =", "Pick one:"]
    choices = [[" Paris", " Lyon"], [" 4", " 5"], [" yes", " no"]]
    assert len(encode_request(tok, "2 + 2 =", " 4")[1]) == 2  # " 4" is two tokens after "=": not one-token
    scores = choice_log_likelihoods(model, tok, contexts, choices, 4, CPU)
    assert [len(c) for c in fast_calls] == [2]  # the other two requests only
    assert [s.n_tokens for s in scores[1]] == [2, 2]
    for context, row_choices, row in zip(contexts, choices, scores):
        for choice, got in zip(row_choices, row):
            assert got.logprob == pytest.approx(reference(model, tok, context, choice).logprob, abs=1e-4)


def test_prompt_learning_models_take_the_general_path(tiny, fast_calls, monkeypatch):
    model, tok = tiny
    monkeypatch.setattr(loglik, "uses_prompt_learning", lambda m: True)
    choice_log_likelihoods(model, tok, ["Pick one:"], [[" yes", " no"]], 1, CPU)
    assert fast_calls == []


class IgnoresLogitsToKeep(nn.Module):
    """A causal LM whose forward has no `logits_to_keep`: it returns logits at every position."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, logits_to_keep=None, **kwargs):
        return self.inner(**kwargs)


def test_a_model_that_returns_every_position_is_read_at_each_rows_last(tiny):
    model, tok = tiny
    contexts = [[1, 5, 9, 12, 40], [1, 7], [1, 5, 9, 30]]
    want = next_token.next_token_logprobs(model, contexts, tok.pad_token_id, CPU)
    got = next_token.next_token_logprobs(IgnoresLogitsToKeep(model), contexts, tok.pad_token_id, CPU)
    assert got.shape == want.shape == (3, model.config.vocab_size)
    assert torch.allclose(got, want, atol=1e-5)
