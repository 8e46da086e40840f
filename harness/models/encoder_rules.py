"""What a run on an encoder (`model.kind: encoder`, e.g. all-MiniLM-L6-v2) changes, decided before
anything loads (experiment.prepare, so the preflight refuses a bad sweep job in a second).

An encoder has no language-model head, so its run:
* scores the task through a new classification head (Task.for_encoder; GLUE: harness/tasks/glue_head.py);
  a task without that protocol (GSM8K, MMLU, ...) is a one-line error;
* trains only with a method that declares encoder support (Method.model_kinds): those train the head;
* sizes the head from the task: `model.num_labels` is set in the run's plan (harness/run/plan.py);
* skips what needs a language-model head, with a one-line notice, and sets that in the run's plan
  so its record says so: the forgetting probes (general text, KL drift, general suite:
  `forgetting.probes=[]`), generation latency (`eval.latency_tokens=0`) and target_gain
  (`forgetting.target_gain=false`: its base model would be an untrained head, i.e. chance);
* refuses train.eval_every and train.lr_sweep, whose val_loss/v1 is a language-model loss.
"""

from __future__ import annotations

from typing import Any

import methods
from harness.config.run_config import RunConfig
from harness.core.errors import HarnessError
from harness.core.notices import notice_once
from harness.models.loading import ENCODER
from harness.tasks.base import Task


def adapt(run: RunConfig, task: Task, method: type[methods._core.base.Method]) -> tuple[Task, dict[str, Any]]:
    """The task's encoder protocol and the changes to the run's config described above;
    HarnessError when the run cannot work."""
    model = run.model.name
    head_task = task.for_encoder()
    if head_task is None:  # GLUE is the only task with a classification-head protocol
        raise HarnessError(f"task {task.name} needs a causal language model; {model} is an encoder: use a glue_* task")
    if ENCODER not in method.model_kinds:
        able = [n for n in methods.names() if ENCODER in methods.get(n).model_kinds]
        raise HarnessError(f"method {method.name} does not support encoder models such as {model}: "
                           f"use one of {', '.join(able)}")
    if run.train.needs_validation:
        raise HarnessError(f"train.eval_every and train.lr_sweep use a language-model validation loss, which {model} "
                           "(an encoder) has not: set train.eval_every=0 and train.lr_sweep=[]")
    skipped = run.forgetting.probe_names()
    skipped += ["target_gain"] if run.forgetting.target_gain else []
    skipped += ["latency"] if run.eval.latency_tokens else []
    if skipped:
        notice_once(f"[harness] {model} is an encoder: skipped {', '.join(skipped)} (probes and latency need a language-model "
                "head, target_gain's base would be an untrained head); the run's config records them as off")
    return head_task, {"model.num_labels": head_task.num_labels, "forgetting.probes": [], "forgetting.probe": None,
                       "forgetting.target_gain": False, "eval.latency_tokens": 0}
