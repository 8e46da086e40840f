"""Tasks scored by log-likelihood over verbalised choices (MMLU, GLUE): the shared evaluation path.

A subclass says how an item becomes a context and its choices, which lm-eval task yaml it mirrors,
and which metrics it reports; this class runs the scoring through the configured evaluator:

* `native` (default): harness.scoring.loglik.choice_log_likelihoods, batched, each context run once;
* `lm_eval`: lm-eval's own task yaml over the same items, in-process on the live model
  (harness.scoring.lm_eval_backend); its version and request hashes join the run's data identity.

Both give per item and choice a ChoiceScore, so the metrics are computed by the same code.
Evaluation knobs are the fields of `ChoiceTaskConfig`, so they land in every run's config_json.
Generation knobs (max new tokens, stop strings) do not apply: nothing is generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.config.checks import option
from harness.core.errors import HarnessError
from harness.core.metrics import Metric, mean_and_stderr
from harness.scoring import lm_eval_backend
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.scoring.loglik import ChoiceScore
from harness.tasks.base import EvalContext, Task, TaskConfig, TaskData
from harness.tasks.prompting import render

EVALUATORS = ("native", "lm_eval")


@dataclass(frozen=True)
class ChoiceTaskConfig(TaskConfig):
    """Options of tasks scored by log-likelihood over choices."""

    num_fewshot: int = option("int", low=0)
    """Solved examples before each question, chosen deterministically (no seed)."""
    evaluator: str = option("text", choices=EVALUATORS)
    """native (harness.scoring.loglik, batched) | lm_eval (lm-eval in-process, the same items)."""
    batch_size: int = option("int", low=1)
    """Contexts per forward pass (native); requests per batch (lm_eval)."""
    chat_template: bool = option("bool")
    """The prompt becomes one user turn of the tokenizer's chat template (native only)."""
    sources: dict[str, Any]
    """Where the items come from: `hub` (the dataset's hub path and configs) and `local` (its folder
    under data.dir)."""

    def validate(self) -> None:
        if self.evaluator == "lm_eval" and self.chat_template:
            # lm-eval renders chat prompts its own way (multi-turn shots), so the items would differ.
            raise HarnessError("task.evaluator=lm_eval compares plain-text prompts; set task.chat_template=false")


class ChoiceTask(Task):
    cfg: ChoiceTaskConfig
    config_class = ChoiceTaskConfig

    # What a subclass provides.
    def context(self, item: dict) -> str:
        raise NotImplementedError

    def choices(self, item: dict) -> list[str]:
        raise NotImplementedError

    def lm_eval_tasks(self, data: TaskData) -> list[tuple[LmEvalTask, list[int]]]:
        """lm-eval tasks covering data.eval, each with the positions in data.eval of its docs."""
        raise NotImplementedError

    def metrics(self, ctx: EvalContext, data: TaskData, scores: list[list[ChoiceScore]]) -> list[Metric]:
        raise NotImplementedError

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        return self.metrics(ctx, data, self.score(ctx, data))

    def score(self, ctx: EvalContext, data: TaskData) -> list[list[ChoiceScore]]:
        c = self.cfg
        if c.evaluator == "native":
            contexts = [render(ctx.tokenizer, self.context(x), c.chat_template) for x in data.eval]
            return ctx.log_likelihoods(contexts, [self.choices(x) for x in data.eval], c.batch_size,
                                       desc=f"eval {data.name}")
        parts = self.lm_eval_tasks(data)
        run = lm_eval_backend.run(ctx.model, ctx.tokenizer, [t for t, _ in parts], c.batch_size, ctx.device,
                                  c.num_fewshot)
        ctx.identity.update(run.identity)
        scores: list[list[ChoiceScore]] = [[] for _ in data.eval]
        for task, positions in parts:
            for pos, row in zip(positions, lm_eval_backend.choice_scores(ctx.tokenizer, run.samples[task.name])):
                scores[pos] = row
        return scores


def accuracy_metric(ctx: EvalContext, task: str, metric: str, correct: list[float], predictions: list[str],
                    references: list[str], item_ids: list[str], version: str) -> Metric:
    """Mean of per-item 0/1 scores, with its stderr; the items go to the samples table."""
    mean, se = mean_and_stderr(correct)
    ctx.add_samples(task, metric, correct, predictions, references, item_ids)
    return Metric(task, metric, mean, se, len(correct), True, version)
