"""The `general_suite` probe (v1): accuracy on a fixed suite of eval-only task specs (registered tasks'
own eval items and scoring, e.g. MMLU subjects and ARC by log-likelihood); before, after and the
delta (after - before, macro over members; < 0 means forgetting), and each member's delta."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness import tasks
from harness.config.run_config import GeneralSuiteConfig
from harness.core.cache import cached_json
from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.probes.base import evaluate_task, paired_delta, per_item
from harness.tasks.base import Task, TaskData


def expanded(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A member spec with `{lm_eval: <lm-eval task>, metric: <its metric, default acc>}` written out as
    the `lm_eval` task (conf/task/lm_eval.yaml) with `name` set to that lm-eval task."""
    if "lm_eval" not in spec:
        return dict(spec)
    return {"task": "lm_eval", "metric": spec.get("metric", "acc"), "with": {**(spec.get("with") or {}), "name": spec["lm_eval"]}}


class GeneralSuiteProbe:
    """Accuracy on eval-only specs `{task: <conf/task name>, metric: <its metric>, with: {overrides}}`:
    each spec's task is built from its yaml plus `with`, loads its own eval items and scores them
    with its own evaluate(); every row of `metric` it returns is one member of the suite."""

    name = "general_suite"
    VERSION = "v1"

    def __init__(self, cfg: GeneralSuiteConfig, data_cfg: Mapping[str, Any], cache_root: Path, conf_dir: Path,
                 max_len: int):
        self.cfg, self.cache_root, self.max_len = cfg, cache_root, max_len
        self.members: list[tuple[Task, TaskData, str]] = []
        for spec in map(expanded, cfg.tasks):
            path = conf_dir / "task" / f"{spec['task']}.yaml"
            if not path.is_file():
                raise HarnessError(f"forgetting.general_suite names task {spec['task']!r}, which has no {path}; fix forgetting.general_suite.tasks")
            task = tasks.build({**yaml.safe_load(path.read_text()), **dict(spec.get("with") or {})})
            self.members.append((task, task.load(data_cfg), spec["metric"]))
        self.before: list[dict] = []

    def _key(self, model_identity: dict, device: torch.device, task: Task, data: TaskData) -> dict:
        return {"model": model_identity, "task": task.cfg.as_dict(), "eval": data.identity["eval_sha256"],
                "device": device.type, "max_len": self.max_len, "v": f"general_suite/{self.VERSION}"}

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        self.before = [
            cached_json(self.cache_root, self._key(model_identity, device, task, data),
                   partial(evaluate_task, task, data, model, tok, device, self.max_len))[0]
            for task, data, _ in self.members
        ]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.before, "baseline() must run before the method is applied"
        rows, befores, afters, deltas = [], [], [], []
        for (task, data, metric), before in zip(self.members, self.before):
            after = evaluate_task(task, data, model, tok, device, self.max_len)
            for row in (r for r in after["metrics"] if r["metric"] == metric):
                base = next(r for r in before["metrics"] if r["task"] == row["task"] and r["metric"] == metric)
                mean, se, n = paired_delta(per_item(after["samples"], row["task"], metric),
                                           per_item(before["samples"], row["task"], metric))
                rows.append(Metric(f"forgetting/general_suite/{row['task']}", "forgetting_acc_delta", mean, se, n, True,
                                   f"forgetting/acc_delta/{self.VERSION}+{row['metric_version']}"))
                befores.append(base["value"])
                afters.append(row["value"])
                deltas.append((mean, se, n))
        if not deltas:
            raise HarnessError("forgetting.general_suite measured nothing: no member returned its named metric; fix forgetting.general_suite.tasks")
        k, n_items = len(deltas), sum(n for _, _, n in deltas)
        errors = [se for _, se, _ in deltas]
        delta_se = (sum(e * e for e in errors) ** 0.5 / k) if None not in errors else None
        task = "forgetting/general_suite"
        return rows + [  # macro averages over members, so large members do not drown small ones
            Metric(task, "general_acc_before", sum(befores) / k, None, n_items, True, f"forgetting/general_acc/{self.VERSION}"),
            Metric(task, "general_acc_after", sum(afters) / k, None, n_items, True, f"forgetting/general_acc/{self.VERSION}"),
            Metric(task, "forgetting_acc_delta", sum(d for d, _, _ in deltas) / k, delta_se, n_items, True,
                   f"forgetting/acc_delta/{self.VERSION}"),
        ]
