"""lm-eval's own requests, scored by the harness's packed log-likelihood scorer.

For a task run through lm-eval's registry (harness/tasks/lm_eval_task.py), lm-eval builds every
request itself from its task yaml (prompts, few-shot examples, choices, WinoGrande's one context
per option) with `Task.build_all_requests`; here each (context, continuation) pair is scored by
`harness.scoring.loglik.choice_log_likelihoods` (pairs that share a context in one request), and
lm-eval's own `process_results` turns each document's scores into its metric values. So the
requests and the metric definitions are lm-eval's by construction, and only the forward passes are
ours.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.errors import HarnessError
from harness.scoring.lm_eval_backend import LmEvalTask, write_task
from harness.scoring.loglik import choice_log_likelihoods


@dataclass
class ScoredTask:
    """Per document (in doc order): lm-eval's metric values, and the (log-likelihood, is_greedy) of
    each of its requests; plus each metric's aggregation and direction, from the task."""

    values: list[dict[str, float]]
    scores: list[list[tuple[float, bool]]]
    aggregation: dict
    higher_is_better: dict[str, bool]


def score(model: nn.Module, tok: PreTrainedTokenizerBase, task: LmEvalTask, batch_size: int, device: torch.device,
          num_fewshot: int, max_len: int | None = None) -> ScoredTask:
    """Build `task`'s requests with lm-eval and score them natively (log-likelihood output types only)."""
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="harness-lm-eval-") as tmp:
        write_task(Path(tmp), task, num_fewshot)
        built = TaskManager(include_path=tmp, include_defaults=False).load([task.name])["tasks"][task.name]
        built.build_all_requests(limit=None, rank=0, world_size=1)
    kinds = {inst.request_type for inst in built.instances}
    if kinds - {"loglikelihood"}:
        raise HarnessError(f"lm-eval task {task.name} makes {', '.join(sorted(kinds))} requests; the native evaluator "
                           "scores log-likelihood ones only: set task.evaluator=lm_eval")
    by_context: dict[str, list] = defaultdict(list)
    for inst in built.instances:
        by_context[inst.arguments[0]].append(inst)
    contexts = list(by_context)
    scored = choice_log_likelihoods(model, tok, contexts, [[i.arguments[1] for i in by_context[c]] for c in contexts],
                                    batch_size, device, max_len=max_len, desc=f"eval {task.name}")
    result: dict[tuple[int, int], tuple[float, bool]] = {}
    for context, row in zip(contexts, scored):
        for inst, s in zip(by_context[context], row):
            result[(inst.doc_id, inst.idx)] = (s.logprob, s.is_greedy)
    per_doc: dict[int, list] = defaultdict(list)
    for inst in sorted(built.instances, key=lambda i: (i.doc_id, i.idx)):
        per_doc[inst.doc_id].append(inst)
    values, scores = [], []
    for doc_id in sorted(per_doc):
        insts = per_doc[doc_id]
        doc_scores = [result[(i.doc_id, i.idx)] for i in insts]
        values.append(built.process_results(insts[0].doc, doc_scores))
        scores.append(doc_scores)
    return ScoredTask(values, scores, built.aggregation(), built.higher_is_better())
