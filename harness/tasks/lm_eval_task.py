"""Any lm-eval task, evaluation only: `task=lm_eval task.name=<lm-eval task>` (conf/task/lm_eval.yaml).

The task's yaml is lm-eval's own (found by its registered name under lm_eval/tasks/); its documents
come from the first source in `data.order` that has them:

* hub: lm-eval's own dataset (`dataset_path` of its yaml), as lm-eval loads it;
* local: for the tasks in `harness.data.lm_eval_docs.CONVERTERS` (ARC-Easy, ARC-Challenge, PIQA,
  WinoGrande, BoolQ), copies of the same evaluation sets in the data dir (LLM-Adapters' test sets,
  MosaicML's BoolQ), read back into the hub schema.

The first `n_eval` documents of the task's evaluation split are scored. `evaluator: native` lets
lm-eval build every request (prompt, few-shot examples, choices, generation settings) and answers
them with the packed log-likelihood scorer or greedy generation (harness/scoring/lm_eval_requests.py),
lm-eval's filters and `process_results` giving each document's metric values; `evaluator: lm_eval`
runs lm-eval's own loop on the same documents. Metric rows: each of the task's per-document metrics
under each of its filters (`lm_eval_backend.metric_name`), the mean over documents with its stderr,
version `lm_eval/<task>/<metric>/v<task version>`. The data identity records the lm-eval version, the
sha256 of the task's yaml and the documents' hash. There is no training split: a run that trains on
such a task is refused.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.config.checks import option
from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.data import lm_eval_docs
from harness.data.layout import LocalDataset, json_file, read_json_rows
from harness.data.sources import SourceUnavailable, first_available, read_local
from harness.scoring import lm_eval_backend, lm_eval_requests
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.tasks import register
from harness.tasks.base import EvalContext, Task, TaskConfig, TaskData
from harness.tasks.choice import EVALUATORS

TASK_KEY = re.compile(r"""^["']?task["']?:\s*["']?([\w\-.]+)["']?\s*,?\s*$""", re.M)


@dataclass(frozen=True)
class LmEvalConfig(TaskConfig):
    """An lm-eval task's options (conf/task/lm_eval.yaml): `name` is the lm-eval task, and:"""

    via: str = option("text", choices=("lm_eval",))
    """The harness task class that runs it: lm-eval's registry."""
    num_fewshot: int = option("int", low=0)
    """Few-shot examples, as lm-eval chooses them from the task's few-shot split."""
    evaluator: str = option("text", choices=EVALUATORS)
    """native (lm-eval's requests, the packed scorer) | lm_eval (lm-eval's own loop)."""
    batch_size: int = option("int", low=1)
    """Contexts per forward pass (native); requests per batch (lm_eval)."""


@functools.lru_cache(maxsize=1)
def _yaml_index() -> dict[str, Path]:
    """lm-eval task name -> its yaml, from a text scan of lm-eval's task folder (about 1 s)."""
    import lm_eval

    index: dict[str, Path] = {}
    for path in sorted((Path(lm_eval.__file__).parent / "tasks").rglob("*.yaml")):
        for match in TASK_KEY.finditer(path.read_text(encoding="utf-8", errors="replace")):
            index.setdefault(match.group(1), path)
    return index


def task_yaml(name: str) -> Path:
    """The yaml of lm-eval's task `name`; a one-line error when lm-eval has none by that name."""
    path = _yaml_index().get(name)
    if path is None:
        raise HarnessError(f"task.name={name!r} is not an lm-eval task (no lm_eval/tasks/**.yaml says `task: {name}`); "
                           "list them with `lm-eval ls tasks`")
    return path


@register
class LmEvalRegistryTask(Task):
    name = "lm_eval"
    cfg: LmEvalConfig
    config_class = LmEvalConfig

    def __init__(self, cfg: LmEvalConfig):
        super().__init__(cfg)
        self.name = cfg.name  # results are filed under the lm-eval task's own name
        self.yaml = task_yaml(cfg.name)

    def _task(self, docs: list[dict]) -> LmEvalTask:
        import lm_eval

        return LmEvalTask(f"harness_{self.name}", str(self.yaml.relative_to(Path(lm_eval.__file__).parent / "tasks")), docs)

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        loaders = {"hub": self._hub_docs}
        local = lm_eval_docs.CONVERTERS.get(self.name)
        if local is not None:
            loaders["local"] = lambda: local.convert(read_local(data_cfg.get("dir"), local.relative, read_json_rows), local.relative)
        source, docs = first_available(f"task {self.name} (lm-eval)", loaders, list(data_cfg["order"]))
        evaluation = docs[: self.cfg.n_eval]
        identity = {
            "task": self.name, "source": source, "n_eval": len(evaluation), "eval_sha256": hash_object(evaluation, 64),
            "lm_eval_version": lm_eval_backend.lm_eval_version(),
            "task_yaml_sha256": hashlib.sha256(self.yaml.read_bytes()).hexdigest(),
        }
        return TaskData(self.name, [], evaluation, identity)

    def _hub_docs(self) -> list[dict]:
        from lm_eval.tasks import TaskManager

        from harness.models.hub import hub_usable

        if not hub_usable():
            raise SourceUnavailable("the Hugging Face hub is unreachable (set HF_HUB_OFFLINE=1 to use the HF cache)")
        try:  # index only the task's own folder (its includes and utils live there): well under 1 s, not lm-eval's whole tree
            built = TaskManager(include_path=str(self.yaml.parent), include_defaults=False).load([self.name])["tasks"][self.name]
            docs = built.test_docs() if built.has_test_docs() else built.validation_docs()
            return [dict(d) for d in docs]
        except Exception as exc:  # offline, gated or missing on the hub
            raise SourceUnavailable(f"lm-eval could not load {self.name}'s dataset ({type(exc).__name__})") from None

    def local_datasets(self) -> list[LocalDataset]:
        local = lm_eval_docs.CONVERTERS.get(self.name)
        return [] if local is None else [LocalDataset(local.dataset, (json_file(local.relative, None),))]

    def training_pair(self, item: dict) -> tuple[str, str]:
        raise HarnessError(f"task {self.name} (lm-eval) is evaluation only: it has no training split; "
                           "use it with method=base or in forgetting.general_suite")

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        task, c = self._task(data.eval), self.cfg
        if c.evaluator == "native":
            scored = lm_eval_requests.score(ctx, task, c.batch_size, c.num_fewshot)
            values, better = scored.values, scored.higher_is_better
        else:
            run = lm_eval_backend.run(ctx.model, ctx.tokenizer, [task], c.batch_size, ctx.device, c.num_fewshot)
            ctx.identity.update(run.identity)
            values = run.values[task.name]
            better = {}  # lm-eval's samples do not say; its per-document metrics are accuracies and matches
        version = _task_version(self.yaml)
        metrics = []
        for metric in sorted(values[0]) if values else []:
            per_item = [float(v[metric]) for v in values]
            mean, se = mean_and_stderr(per_item)
            ctx.add_samples(self.name, metric, per_item)
            metrics.append(Metric(self.name, metric, mean, se, len(per_item), bool(better.get(metric, True)),
                                  f"lm_eval/{self.name}/{metric}/v{version}"))
        return metrics


def _task_version(path: Path) -> str:
    match = re.search(r"^\s*version:\s*([\d.]+)", path.read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else "0"
