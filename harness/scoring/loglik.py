"""Batched log-likelihood of candidate continuations: the scorer behind every multiple-choice task.

    scores = choice_log_likelihoods(model, tok, contexts, choices_per_context, batch_size, device)
    scores[i][j]  # ChoiceScore(logprob, is_greedy, n_tokens) of choice j after context i
    best_choice(scores[i])  # index of the highest log-likelihood (first on ties, like lm-eval's acc)

Tokenisation follows lm-eval's `_encode_pair` so both evaluators score the same token sequences:
trailing spaces of the context move to the continuation, `context + continuation` is encoded whole
and the continuation is what follows the context's own tokens. The tokenizer's default special
tokens apply (lm-eval's HFLM default), and an empty context is replaced by the BOS (else EOS) token.

Speed: a request whose every choice is a single token (MMLU's " A".." D") needs only its context's
next-token distribution: harness.scoring.next_token runs each such context once, right-padded in
length-sorted batches, logits at its last position only (a batch of k-shot contexts is packed as
below instead, when the model takes a custom mask). Every other request goes through the general
path, which also runs each context once, whatever its number of choices, in the same forward pass
as its choices. A request (context + every choice but its last token) is laid out in one row, and
short requests share a row (sequence packing); a tree-shaped attention mask lets each choice see its
own context and its own earlier tokens only, and positions restart after the context for every
choice, so each choice is scored exactly as if it were the only continuation. Logits are computed
only where something is scored. lm-eval instead runs context + choice once per choice (once per
context when every choice is one token), padded to the batch's longest. Contexts that share a long
token prefix (k-shot examples of one MMLU subject, a passage with several questions) are batched
together and that prefix runs once, its keys/values reused by every row. Prompt-learning PEFT
models (virtual tokens prepended inside their forward) are scored on full sequences instead, and so
are multi-token choices under attention kernels that take no per-token mask (flash attention; the
one-token fast path needs no mask).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from harness.scoring.generation import uses_prompt_learning
from harness.scoring.next_token import GROUP_PREFIX, common_prefix, next_token_logprobs


MIN_SHARED_PREFIX = 16  # tokens; shorter common prefixes are not worth a separate forward pass
ROW_TOKENS = 256  # packed row width (at least the longest request): attention cost stays small


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
    fast_path: bool = True,
) -> list[list[ChoiceScore]]:
    """Per context, per choice: log-likelihood of the choice as a continuation of the context.

    `batch_size` counts contexts per forward pass. `max_len` (default: the model's
    max_position_embeddings) bounds context + continuation; longer contexts lose their left end.
    `fast_path=False` sends one-token requests through the general path too (the two are compared
    in tests and benchmarks/eval_speed.py).
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

    # Fast path: a request whose every choice is one token (given the context, as lm-eval splits it)
    # is scored from its context's next-token log-probabilities. Prompt-learning models prepend
    # virtual tokens that shift every position, so they always take the general path.
    fast = fast_path and not uses_prompt_learning(model)
    one_token = {i for i, (_, conts) in enumerate(requests) if fast and conts and all(len(c) == 1 for c in conts)}
    general = _score_packed if _takes_custom_masks(model) else _score_full_sequences
    rest = [i for i in range(len(requests)) if i not in one_token]
    out: list[list[ChoiceScore]] = [[] for _ in requests]
    for score, members, group_prefix in ((_score_next_token, sorted(one_token), GROUP_PREFIX),
                                         (general, rest, MIN_SHARED_PREFIX)):
        member_contexts, lengths = [requests[i][0] for i in members], [_row_tokens(*requests[i]) for i in members]
        for batch in tqdm(_batches(member_contexts, lengths, batch_size, group_prefix), desc=desc, leave=False):
            idx = [members[b] for b in batch]
            for i, scores in zip(idx, score(model, tok, [requests[i] for i in idx], device)):
                out[i] = scores
    return out


def _row_tokens(context: list[int], choices: list[list[int]]) -> int:
    """Tokens a request puts in a packed row: its context and every choice but its last token."""
    return len(context) + sum(len(c) - 1 for c in choices)


def _attention(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def _takes_custom_masks(model: nn.Module) -> bool:
    """Packed scoring needs a per-token attention mask: SDPA and eager attention take one; flash
    attention does not, and prompt-learning PEFT models prepend virtual tokens the mask would miss."""
    return _attention(model) in ("sdpa", "eager") and not uses_prompt_learning(model)


def _batches(contexts: list[list[int]], lengths: list[int], batch_size: int,
             group_prefix: int = MIN_SHARED_PREFIX) -> list[list[int]]:
    """Batches of request indices. Contexts that share a long prefix (>= `group_prefix` tokens:
    few-shot examples, a passage) are batched only with each other, so each batch runs that prefix
    once; the rest are batched by `lengths` (tokens each request puts in its row), so batches pad
    little."""
    by_tokens = sorted(range(len(contexts)), key=lambda i: contexts[i])
    groups: list[list[int]] = [[]]
    for i in by_tokens:  # in token order, a group is a run of neighbours sharing >= group_prefix tokens
        if groups[-1] and common_prefix(contexts[groups[-1][0]], contexts[i]) >= group_prefix:
            groups[-1].append(i)
        else:
            groups.append([i])
    groups = [g for g in groups if g]
    loose = sorted((i for g in groups if len(g) == 1 for i in g), key=lambda i: -lengths[i])
    runs = [sorted(g, key=lambda i: -lengths[i]) for g in groups if len(g) > 1] + [loose]
    return [run[s : s + batch_size] for run in runs for s in range(0, len(run), batch_size)]


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


def _choice_score(logprobs: torch.Tensor, targets: list[int]) -> ChoiceScore:
    """logprobs: [n, V] log-probabilities at the positions that predict `targets` (n tokens)."""
    target = torch.tensor(targets, dtype=torch.long, device=logprobs.device)
    picked = logprobs.gather(1, target[:, None]).squeeze(1)
    greedy = bool((logprobs.argmax(-1) == target).all())
    return ChoiceScore(float(picked.sum()), greedy, len(targets))


class _Packed(NamedTuple):
    """A batch laid out as rows of requests: each request is its context's own tokens (after the
    shared prefix) followed by every choice's tokens but the last (a choice's last token is only
    predicted), and a row holds as many requests as fit. Per token: its request (-1 for padding),
    its segment (0 for the context, j + 1 for choice j) and its position, which restarts after the
    context for every choice, as if each choice were the only continuation."""
    ids: torch.Tensor
    positions: torch.Tensor
    request: torch.Tensor
    segment: torch.Tensor
    starts: list[tuple[int, int]]  # (row, offset) of each request of the batch


def _pack(batch, shared: int, pad_id: int) -> _Packed:
    lengths = [_row_tokens(ctx, conts) - shared for ctx, conts in batch]
    width = max(max(lengths), ROW_TOKENS)
    rows: list[list[int]] = []  # request indices per row, first fit in decreasing length
    free: list[int] = []
    for b in sorted(range(len(batch)), key=lambda b: -lengths[b]):
        row = next((r for r, room in enumerate(free) if room >= lengths[b]), None)
        if row is None:
            row = len(rows)
            rows.append([])
            free.append(width)
        rows[row].append(b)
        free[row] -= lengths[b]
    width = max(width - room for room in free)
    shape = (len(rows), width)
    packed = _Packed(torch.full(shape, pad_id), torch.zeros(shape, dtype=torch.long),
                     torch.full(shape, -1), torch.zeros(shape, dtype=torch.long), [(0, 0)] * len(batch))
    for r, members in enumerate(rows):
        offset = 0
        for b in members:
            ctx, conts = batch[b]
            tokens, segment, position = ctx[shared:], [0] * (len(ctx) - shared), list(range(shared, len(ctx)))
            for j, cont in enumerate(conts):
                tokens = tokens + cont[:-1]
                segment += [j + 1] * (len(cont) - 1)
                position += range(len(ctx), len(ctx) + len(cont) - 1)
            span = slice(offset, offset + len(tokens))
            packed.ids[r, span] = torch.tensor(tokens)
            packed.positions[r, span] = torch.tensor(position)
            packed.request[r, span] = b
            packed.segment[r, span] = torch.tensor(segment)
            packed.starts[b] = (r, offset)
            offset += len(tokens)
    return packed


def _tree_mask(packed: _Packed, shared: int, additive: bool, device) -> torch.Tensor:
    """[rows, 1, width, shared + width] attention mask of packed rows: a token sees the shared
    prefix, the earlier tokens of its own request's context and of its own choice, nothing else.
    Padding sees only itself (a fully masked query row would give NaN). Boolean (True = attend)
    for SDPA; `additive` gives eager attention the float form it adds to its scores."""
    req, seg = packed.request.to(device), packed.segment.to(device)
    rows, width = req.shape
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    same_request = (req[:, :, None] == req[:, None, :]) & (req[:, None, :] >= 0)
    own_branch = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    allowed = causal & same_request & own_branch
    allowed |= torch.eye(width, dtype=torch.bool, device=device) & (req[:, :, None] < 0)
    prefix = torch.ones(rows, width, shared, dtype=torch.bool, device=device)
    allowed = torch.cat([prefix, allowed], dim=2)[:, None]
    if not additive:
        return allowed
    return torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, torch.finfo(torch.float32).min)


def _score_packed(model, tok, batch, device) -> list[list[ChoiceScore]]:
    contexts = [ctx for ctx, _ in batch]
    # Tokens every context of the batch starts with (each keeps at least one of its own) run once.
    shared = min([len(c) - 1 for c in contexts] + [common_prefix(contexts[0], c) for c in contexts[1:]])
    if len(batch) == 1 or shared < MIN_SHARED_PREFIX:
        shared = 0
    packed = _pack(batch, shared, tok.pad_token_id)
    cache = None
    if shared:
        prefix = torch.tensor([contexts[0][:shared]], device=device)
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(packed.ids.shape[0])
    # Positions whose logits score something: each request's last context token (it predicts every
    # choice's first token) and its choice tokens. Logits are computed only there, in every row.
    wanted = (packed.segment > 0).any(0)
    for b, (r, offset) in enumerate(packed.starts):
        wanted[offset + len(contexts[b]) - shared - 1] = True
    keep = wanted.nonzero().squeeze(1)
    column = torch.full((packed.ids.shape[1],), -1, dtype=torch.long)
    column[keep] = torch.arange(len(keep))
    logits = model(
        input_ids=packed.ids.to(device), position_ids=packed.positions.to(device),
        attention_mask=_tree_mask(packed, shared, _attention(model) == "eager", device),
        cache=cache, use_cache=cache is not None, logits_to_keep=keep.to(device),
    ).logits
    out: list[list[ChoiceScore]] = [[] for _ in batch]
    for b, (ctx, conts) in enumerate(batch):
        r, offset = packed.starts[b]
        last_context = offset + len(ctx) - shared - 1
        at = last_context + 1  # the first choice's tokens
        for cont in conts:
            predicting = column[[last_context, *range(at, at + len(cont) - 1)]]
            out[b].append(_choice_score(F.log_softmax(logits[r, predicting].float(), dim=-1), cont))
            at += len(cont) - 1
    return out


def _score_next_token(model, tok, batch, device) -> list[list[ChoiceScore]]:
    """Requests whose every choice is one token: each choice is read off the log-probabilities at
    its context's last position (harness.scoring.next_token). A batch of contexts sharing a long
    prefix (k-shot examples of one subject: few contexts of varied lengths, which padded rows would
    waste) is packed by the general path instead, when the model takes its mask."""
    contexts = [ctx for ctx, _ in batch]
    shared = min(common_prefix(contexts[0], c) for c in contexts[1:]) if len(batch) > 1 else 0
    if shared >= GROUP_PREFIX and _takes_custom_masks(model):
        return _score_packed(model, tok, batch, device)
    logprobs = next_token_logprobs(model, contexts, tok.pad_token_id, device)
    greedy = logprobs.argmax(-1).tolist()
    return [[ChoiceScore(float(logprobs[b, c[0]]), c[0] == greedy[b], 1) for c in conts]
            for b, (_, conts) in enumerate(batch)]


def _score_full_sequences(model, tok, batch, device) -> list[list[ChoiceScore]]:
    rows = [(b, ctx, cont) for b, (ctx, conts) in enumerate(batch) for cont in conts]
    ids, mask = _pad([ctx + cont for _, ctx, cont in rows], tok.pad_token_id)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    offset = logits.shape[1] - ids.shape[1]  # virtual tokens the PEFT model prepended
    out: list[list[ChoiceScore]] = [[] for _ in batch]
    for r, (b, ctx, cont) in enumerate(rows):
        start = offset + len(ctx) - 1  # the last context position predicts the first choice token
        out[b].append(_choice_score(F.log_softmax(logits[r, start : start + len(cont)].float(), dim=-1), cont))
    return out
