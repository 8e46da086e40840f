"""The batched log-likelihood scorer against one plain forward pass per (context, choice)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.scoring.loglik import (ChoiceScore, _score_full_sequences, best_choice, choice_log_likelihoods,
                                    encode_request)

CONTEXTS = [
    "The capital of France is",
    "Question: Is this sentence positive or negative?\nAnswer:",
    "2 + 2 =",
    "Sentence 1: A man is playing a guitar on a long street with many people.\nSentence 2: Someone plays music.\nAnswer: ",
]
CHOICES = [
    [" Paris", " Lyon and Marseille", " a city"],
    [" negative", " positive"],
    [" 4", " four", " 22 or so"],
    ["yes", "no", "not at all"],
]


@torch.no_grad()
def reference(model, tok, context, choice) -> ChoiceScore:
    """One unpadded forward pass over context + choice, no cache, no batching."""
    ctx, cont = encode_request(tok, context, choice)
    logits = model(input_ids=torch.tensor([ctx + cont])).logits[0]
    logprobs = F.log_softmax(logits[len(ctx) - 1 : len(ctx) + len(cont) - 1].float(), dim=-1)
    target = torch.tensor(cont)
    picked = logprobs.gather(1, target[:, None]).sum()
    return ChoiceScore(float(picked), bool((logprobs.argmax(-1) == target).all()), len(cont))


@pytest.fixture(scope="module")
def tiny(tiny_model):
    loaded = tiny_model()
    return loaded.model.eval(), loaded.tokenizer


@pytest.mark.parametrize("batch_size, row_tokens", [(1, 256), (3, 256), (4, 8)])
def test_batched_packed_scores_equal_plain_forward(tiny, batch_size, row_tokens, monkeypatch):
    """Requests share rows (256-token rows) or get one each (8: narrower than any request)."""
    monkeypatch.setattr("harness.scoring.loglik.ROW_TOKENS", row_tokens)
    model, tok = tiny
    scores = choice_log_likelihoods(model, tok, CONTEXTS, CHOICES, batch_size, torch.device("cpu"))
    assert [len(s) for s in scores] == [len(c) for c in CHOICES]
    assert any(s.n_tokens > 1 for row in scores for s in row)  # choices packed after their context
    for context, choices, row in zip(CONTEXTS, CHOICES, scores):
        for choice, got in zip(choices, row):
            want = reference(model, tok, context, choice)
            assert got.n_tokens == want.n_tokens and got.is_greedy == want.is_greedy
            assert got.logprob == pytest.approx(want.logprob, abs=1e-4)


def test_shared_prefix_runs_once_and_scores_the_same(tiny):
    """k-shot style contexts: a long common prefix, then questions of different lengths."""
    model, tok = tiny
    shots = "The following are questions.\n\n" + "".join(f"Q: What is {i} + {i}?\nA: {2 * i}\n\n" for i in range(6))
    contexts = [shots + q for q in ("Q: What is 7 + 7?\nA:", "Q: And what is 12 plus 30, written out?\nA:", "Q: 1?\nA:")]
    choices = [[" 14", " fourteen and more"], [" 42", " forty two"], [" 2", " one"]]
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape), with_kwargs=True)
    try:
        scores = choice_log_likelihoods(model, tok, contexts, choices, 3, torch.device("cpu"))
    finally:
        hook.remove()
    assert len(calls) == 2  # one batch: the prefix, then every row packed with its choices
    assert calls[0][0] == 1 and calls[0][1] >= 40  # the prefix, once, for the whole batch
    assert calls[1][0] == 1 and calls[1][1] < calls[0][1]  # then the questions and choices, packed in one row
    for context, row_choices, row in zip(contexts, choices, scores):
        for choice, got in zip(row_choices, row):
            assert got.logprob == pytest.approx(reference(model, tok, context, choice).logprob, abs=1e-4)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_choices_see_only_their_context_under_either_attention(tiny, attention):
    """Choices share a row after their context; the mask must hide them from each other (boolean for
    SDPA, additive for eager attention)."""
    model, tok = tiny
    model.set_attn_implementation(attention)
    try:
        scores = choice_log_likelihoods(model, tok, CONTEXTS, CHOICES, 4, torch.device("cpu"))
    finally:
        model.set_attn_implementation("sdpa")
    for context, choices, row in zip(CONTEXTS, CHOICES, scores):
        for choice, got in zip(choices, row):
            assert got.logprob == pytest.approx(reference(model, tok, context, choice).logprob, abs=1e-4)


def test_full_sequence_path_agrees(tiny):
    """The path for prompt-learning models (no external cache) scores the same sequences."""
    model, tok = tiny
    batch = [(encode_request(tok, c, ch[0])[0], [encode_request(tok, c, x)[1] for x in ch]) for c, ch in zip(CONTEXTS, CHOICES)]
    full = _score_full_sequences(model, tok, batch, torch.device("cpu"))
    cached = choice_log_likelihoods(model, tok, CONTEXTS, CHOICES, 4, torch.device("cpu"))
    for a_row, b_row in zip(full, cached):
        assert [round(a.logprob, 4) for a in a_row] == [round(b.logprob, 4) for b in b_row]


def test_trailing_space_moves_to_the_continuation(tiny):
    _, tok = tiny
    ctx, cont = encode_request(tok, "Answer: ", "yes")
    assert ctx == tok.encode("Answer:") and tok.decode(cont) == " yes"


def test_long_context_is_cut_from_the_left(tiny):
    model, tok = tiny
    long_context = "word " * 50 + "end"
    cut = choice_log_likelihoods(model, tok, [long_context], [[" a", " b c"]], 1, torch.device("cpu"), max_len=10)
    ctx, _ = encode_request(tok, long_context, " b c")
    want = reference(model, tok, tok.decode(ctx[-9:]), " b c")
    assert cut[0][1].logprob == pytest.approx(want.logprob, abs=1e-4)


def test_best_choice_takes_the_first_maximum():
    scores = [ChoiceScore(-2.0, False, 1), ChoiceScore(-1.0, True, 1), ChoiceScore(-1.0, False, 1)]
    assert best_choice(scores) == 1
