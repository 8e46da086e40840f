"""Batched log-likelihood of candidate continuations: the scorer behind every multiple-choice task.

    scores = choice_log_likelihoods(model, tok, contexts, choices_per_context, batch_size, device)
    scores[i][j]  # ChoiceScore(logprob, is_greedy, n_tokens) of choice j after context i
    best_choice(scores[i])  # index of the highest log-likelihood (first on ties, like lm-eval's acc)

Tokenisation follows lm-eval's `_encode_pair` so both evaluators score the same token sequences:
trailing spaces of the context move to the continuation, `context + continuation` is encoded whole
and the continuation is what follows the context's own tokens. The tokenizer's default special
tokens apply (lm-eval's HFLM default), and an empty context is replaced by the BOS (else EOS) token.

Speed: each context is run through the model once, whatever its number of choices. Contexts are
batched by length (left-padded, positions from the mask), except that contexts sharing a long token
prefix (k-shot examples of one MMLU subject, a passage with several questions) are batched together
and that prefix runs once, its keys/values reused by every row. The forward pass keeps only the last
position's logits, which give every choice's first token (all of MMLU's " A".." D" and every
one-token GLUE label are then done). Longer continuations run in a second pass over the cached
keys/values, one row per (context, choice), so the context is never recomputed. Prompt-learning PEFT
models (virtual tokens prepended inside their forward) cannot take an external cache and are scored
on full sequences instead.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from harness.generation import uses_prompt_learning


MIN_SHARED_PREFIX = 16  # tokens; shorter common prefixes are not worth a separate forward pass


class ChoiceScore(NamedTuple):
    logprob: float   # sum over continuation tokens of log p(token | everything before), nats
    is_greedy: bool  # every continuation token is the argmax at its position
    n_tokens: int    # continuation length in tokens


def encode_request(tok: PreTrainedTokenizerBase, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-eval's HFLM encodes a loglikelihood request."""
    if not context:
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        return [prefix], tok.encode(continuation)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole, ctx = tok.encode(context + continuation), tok.encode(context)
    return ctx, whole[len(ctx):]


def best_choice(scores: Sequence[ChoiceScore]) -> int:
    """Index of the most likely choice; the first one on ties (numpy argmax, as lm-eval's acc)."""
    return max(range(len(scores)), key=lambda j: (scores[j].logprob, -j))


@torch.no_grad()
def choice_log_likelihoods(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    contexts: Sequence[str],
    choices_per_context: Sequence[Sequence[str]],
    batch_size: int,
    device: torch.device,
    max_len: int | None = None,
    desc: str = "loglik",
) -> list[list[ChoiceScore]]:
    """Per context, per choice: log-likelihood of the choice as a continuation of the context.

    `batch_size` counts contexts per forward pass. `max_len` (default: the model's
    max_position_embeddings) bounds context + continuation; longer contexts lose their left end.
    """
    if len(contexts) != len(choices_per_context):
        raise ValueError("contexts and choices_per_context must have the same length")
    model.eval()
    requests = []
    for context, choices in zip(contexts, choices_per_context):
        encoded = [encode_request(tok, context, c) for c in choices]
        # The context's encoding does not depend on the choice, so it is shared by all of them.
        requests.append((encoded[0][0], [cont for _, cont in encoded]))
    limit = max_len or getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit:
        requests = [(ctx[-max(limit - max(map(len, conts)) + 1, 1):], conts) for ctx, conts in requests]

    score = _score_full_sequences if uses_prompt_learning(model) else _score_with_cache
    out: list[list[ChoiceScore]] = [[] for _ in requests]
    for idx in tqdm(_batches([ctx for ctx, _ in requests], batch_size), desc=desc, leave=False):
        for i, scores in zip(idx, score(model, tok, [requests[i] for i in idx], device)):
            out[i] = scores
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _batches(contexts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Batches of context indices. Contexts that share a long prefix (few-shot examples, a passage)
    are batched only with each other, so each batch runs that prefix once; the rest are batched by
    length, so batches pad little."""
    by_tokens = sorted(range(len(contexts)), key=lambda i: contexts[i])
    groups: list[list[int]] = [[]]
    for i in by_tokens:  # in token order, a group is a run of neighbours sharing >= MIN_SHARED_PREFIX tokens
        if groups[-1] and _common_prefix(contexts[groups[-1][0]], contexts[i]) >= MIN_SHARED_PREFIX:
            groups[-1].append(i)
        else:
            groups.append([i])
    groups = [g for g in groups if g]
    loose = sorted((i for g in groups if len(g) == 1 for i in g), key=lambda i: -len(contexts[i]))
    runs = [sorted(g, key=lambda i: -len(contexts[i])) for g in groups if len(g) > 1] + [loose]
    return [run[s : s + batch_size] for run in runs for s in range(0, len(run), batch_size)]


def _pad(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, span], mask[r, span] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


def _choice_score(logprobs: torch.Tensor, targets: list[int]) -> ChoiceScore:
    """logprobs: [n, V] log-probabilities at the positions that predict `targets` (n tokens)."""
    target = torch.tensor(targets, dtype=torch.long, device=logprobs.device)
    picked = logprobs.gather(1, target[:, None]).squeeze(1)
    greedy = bool((logprobs.argmax(-1) == target).all())
    return ChoiceScore(float(picked.sum()), greedy, len(targets))


def _score_with_cache(model, tok, batch, device) -> list[list[ChoiceScore]]:
    contexts = [ctx for ctx, _ in batch]
    # Tokens every context of the batch starts with (each keeps at least one of its own) run once.
    shared = min([len(c) - 1 for c in contexts] + [_common_prefix(contexts[0], c) for c in contexts[1:]])
    cache = None
    if len(batch) > 1 and shared >= MIN_SHARED_PREFIX:
        prefix = torch.tensor([contexts[0][:shared]], device=device)
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(len(batch))
    else:
        shared = 0
    ids, own = _pad([c[shared:] for c in contexts], tok.pad_token_id, left=True)
    ids, own = ids.to(device), own.to(device)
    mask = torch.cat([own.new_ones(len(batch), shared), own], dim=1)  # left padding sits after the prefix
    positions = shared + (own.cumsum(-1) - 1).clamp(min=0)  # real tokens count on from the prefix
    first = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                  use_cache=True, logits_to_keep=1)
    first_logprobs = F.log_softmax(first.logits[:, -1].float(), dim=-1)  # predicts every choice's first token

    rows = [(b, cont) for b, (_, conts) in enumerate(batch) for cont in conts]
    longer = [r for r, (_, cont) in enumerate(rows) if len(cont) > 1]  # one-token choices are done
    rest_logits = None
    if longer:
        # One row per (context, choice) of 2+ tokens: the context's cached keys/values repeated,
        # then the choice's tokens but the last (each position predicts the next token).
        owner = torch.tensor([rows[r][0] for r in longer], device=device)
        cache = first.past_key_values
        cache.batch_select_indices(owner)
        cont_ids, cont_mask = _pad([rows[r][1][:-1] for r in longer], tok.pad_token_id, left=False)
        cont_ids, cont_mask = cont_ids.to(device), cont_mask.to(device)
        steps = torch.arange(cont_ids.shape[1], device=device)
        rest_logits = model(
            input_ids=cont_ids, attention_mask=torch.cat([mask[owner], cont_mask], dim=1),
            position_ids=positions[owner, -1:] + 1 + steps, past_key_values=cache, use_cache=True,
        ).logits
    row_of = {r: k for k, r in enumerate(longer)}

    out: list[list[ChoiceScore]] = [[] for _ in batch]
    for r, (b, cont) in enumerate(rows):
        steps = first_logprobs[b : b + 1]
        if r in row_of:  # log-softmax of the real positions only, never of the padding
            steps = torch.cat([steps, F.log_softmax(rest_logits[row_of[r], : len(cont) - 1].float(), dim=-1)])
        out[b].append(_choice_score(steps, cont))
    return out


def _score_full_sequences(model, tok, batch, device) -> list[list[ChoiceScore]]:
    rows = [(b, ctx, cont) for b, (ctx, conts) in enumerate(batch) for cont in conts]
    ids, mask = _pad([ctx + cont for _, ctx, cont in rows], tok.pad_token_id, left=False)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    offset = logits.shape[1] - ids.shape[1]  # virtual tokens the PEFT model prepended
    out: list[list[ChoiceScore]] = [[] for _ in batch]
    for r, (b, ctx, cont) in enumerate(rows):
        start = offset + len(ctx) - 1  # the last context position predicts the first choice token
        out[b].append(_choice_score(F.log_softmax(logits[r, start : start + len(cont)].float(), dim=-1), cont))
    return out
