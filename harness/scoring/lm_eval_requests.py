"""lm-eval's own requests, answered by the harness's packed log-likelihood scorer and generation.

For a task run through lm-eval's registry (harness/tasks/lm_eval_task.py), lm-eval builds every
request itself from its task yaml (prompts, few-shot examples, choices, WinoGrande's one context
per option, generation settings) with `Task.build_all_requests`. Log-likelihood requests are scored
by the scorer's choice log-likelihoods (pairs that share a context in one request); greedy
`generate_until` requests go through its generation (harness/scoring/scorer.py) with the
request's stop strings and token limit (lm-eval's `normalize_gen_kwargs` reads them). lm-eval's own
filters (answer extraction) and `process_results` then turn each document's responses into its
metric values. So the requests, the answer extraction and the metric definitions are lm-eval's by
construction, and only the forward passes are ours.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.scoring.lm_eval_backend import LmEvalTask, metric_name, write_task
from harness.scoring.scorer import Scorer

NATIVE_KINDS = ("loglikelihood", "generate_until")


@dataclass
class ScoredTask:
    """Per document (in doc order): its metric values (`metric_name`: lm-eval's metric under each of
    the task's filters) and its requests' responses (log-likelihood tasks: (log-likelihood,
    is_greedy) per request; generation tasks: the generated text); and each metric's direction."""

    values: list[dict[str, float]]
    scores: list[list]
    higher_is_better: dict[str, bool]


def score(scorer: Scorer, task: LmEvalTask, batch_size: int, num_fewshot: int) -> ScoredTask:
    """Build `task`'s requests with lm-eval and answer them natively with `scorer` (its model; over
    its ranks, when it has several)."""
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="harness-lm-eval-") as tmp:
        write_task(Path(tmp), task, num_fewshot)
        built = TaskManager(include_path=tmp, include_defaults=False).load([task.name])["tasks"][task.name]
        built.build_all_requests(limit=None, rank=0, world_size=1)
    kinds = {inst.request_type for inst in built.instances}
    if len(kinds) != 1 or not kinds <= set(NATIVE_KINDS):
        raise HarnessError(f"lm-eval task {task.name} makes {', '.join(sorted(kinds))} requests; the native evaluator "
                           f"answers {' or '.join(NATIVE_KINDS)} ones: set task.evaluator=lm_eval")
    answer = _log_likelihoods if kinds == {"loglikelihood"} else _generations
    for inst, response in zip(built.instances, answer(scorer, task.name, built.instances, batch_size)):
        inst.resps = [response]
    built.apply_filters()
    per_doc: dict[int, list] = defaultdict(list)
    for inst in sorted(built.instances, key=lambda i: (i.doc_id, i.idx)):
        per_doc[inst.doc_id].append(inst)
    values, scores = [], []
    for doc_id in sorted(per_doc):
        insts = per_doc[doc_id]
        doc_values = {}
        for key in insts[0].filtered_resps:
            metrics = built.process_results(insts[0].doc, [i.filtered_resps[key] for i in insts])
            doc_values.update({metric_name(m, key): v for m, v in metrics.items() if isinstance(v, (bool, int, float))})
        values.append(doc_values)
        scores.append([i.resps[0] for i in insts])
    better = built.higher_is_better()
    keys = {key for inst in built.instances for key in inst.filtered_resps}
    return ScoredTask(values, scores, {metric_name(m, k): bool(b) for m, b in better.items() for k in keys})


def _log_likelihoods(scorer: Scorer, name: str, instances: list, batch_size: int) -> list[tuple[float, bool]]:
    """(log-likelihood, is_greedy) of each (context, continuation) request, in request order."""
    by_context: dict[str, list[int]] = defaultdict(list)
    for n, inst in enumerate(instances):
        by_context[inst.arguments[0]].append(n)
    contexts = list(by_context)
    scored = scorer.log_likelihoods(contexts, [[instances[n].arguments[1] for n in by_context[c]] for c in contexts],
                                    batch_size, desc=f"eval {name}", max_len=scorer.max_len)
    result: list[tuple[float, bool]] = [(0.0, False)] * len(instances)
    for context, row in zip(contexts, scored):
        for n, s in zip(by_context[context], row):
            result[n] = (s.logprob, s.is_greedy)
    return result


def _generations(scorer: Scorer, name: str, instances: list, batch_size: int) -> list[str]:
    """Greedy continuation of each (context, generation kwargs) request, cut at its stop strings, in
    request order; requests that sample are refused (lm-eval's loop samples them)."""
    from lm_eval.models.utils import normalize_gen_kwargs

    by_settings: dict[tuple, list[int]] = defaultdict(list)
    for n, inst in enumerate(instances):
        kwargs = normalize_gen_kwargs(dict(inst.arguments[1]), 256)  # 256: lm-eval's HFLM default
        if kwargs.get("do_sample"):
            raise HarnessError(f"lm-eval task {name} samples its generations (do_sample); the native evaluator decodes "
                               "greedily: set task.evaluator=lm_eval")
        by_settings[(tuple(kwargs["until"]), int(kwargs["max_gen_toks"]))].append(n)
    result = [""] * len(instances)
    for (until, max_gen_toks), members in by_settings.items():
        outputs = scorer.generate([instances[n].arguments[0] for n in members], max_gen_toks, until, batch_size,
                                  desc=f"eval {name}")
        for n, text in zip(members, outputs):
            result[n] = text
    return result
