"""What a task is: its typed options, where its items come from, how an item becomes training text,
how to score."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from harness.config.checks import check_fields, option
from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.scoring.scorer import Scorer

if TYPE_CHECKING:
    from harness.data.layout import LocalDataset


@dataclass(frozen=True)
class TaskConfig:
    """Options every task has (`conf/task/<name>.yaml`). A task's own options are the fields of its
    subclass, each with the rule its values obey and a docstring; the yaml gives every value (the
    defaults live there only), and an option the class does not have is an error naming those it has.
    Nested source descriptions (`sources`, `pools`) stay mappings: their shape is the loader's."""

    name: str = option("text")
    """The registered task name (the class's `name`)."""
    n_eval: int | None = option("int", low=1, nullable=True)
    """Evaluate the first n items (per member dataset or subject where the task has several); null: all."""
    prompt_version: str = option("text")
    """Bumped whenever a prompt template changes; part of the run id through the config."""

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> TaskConfig:
        """Typed and validated: the first bad option raises HarnessError in one line."""
        name = options.get("name")
        check_fields(cls, options, "task", f"task {name}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in options]
        if missing:
            raise HarnessError(f"task.{missing[0]} is missing; conf/task/{name}.yaml sets it, so compose the task "
                               f"from conf/ (task={name}) or give every option of {cls.__name__}")
        config = cls(**options)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise `HarnessError` for combinations of values the task cannot run with."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GeneratedAnswerConfig(TaskConfig):
    """Options of tasks whose eval prompts are answered by generation."""

    prompt_template: str = option("text")
    """The eval prompt, a `str.format` template over the item's fields."""
    train_prompt_template: str | None = option("text", nullable=True)
    """The training text's own template, followed by the target as is; null: `prompt_template` + " "."""
    chat_template: bool = option("bool")
    """Eval prompts become one user turn of the tokenizer's chat template (training text stays plain)."""
    max_new_tokens: int = option("int", low=1)
    """Decoding stops after this many new tokens ..."""
    stop: list[str] = option("text list")
    """... or at the first of these strings (cut from the output)."""
    eval_batch_size: int = option("int", low=1)
    """Prompts decoded together."""
    num_beams: int = option("int", low=1)
    """1: greedy decoding; more: beam search with this many beams, no sampling (LLM-Adapters: 4)."""


@dataclass
class TaskData:
    """Items a run uses. `name` is the task name results are filed under: a fallback source that is
    not the official split gets its own name, so its numbers are never mixed with published ones."""

    name: str
    train: list[dict]
    eval: list[dict]
    identity: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext(Scorer):
    """What a task's evaluate() gets: the model, and its scorer's entry points (harness/scoring/scorer.py:
    generation, choice log-likelihoods, cross-entropy; spread over the ranks of a run when `world` has
    several). Tasks append one dict per item x metric to `samples` (keys: item_id, metric, value, and
    optionally prediction, reference); the run files them in the `samples` table when
    `eval.log_samples` is on."""

    samples: list[dict] = field(default_factory=list)
    # Provenance the evaluation adds to the run's data identity (data_json), e.g. lm-eval's version
    # and request hashes; never part of the run id, which is fixed before evaluation.
    identity: dict[str, Any] = field(default_factory=dict)

    def add_samples(self, task: str, metric: str, values: list[float], predictions: list[str | None] | None = None,
                    references: list[str | None] | None = None, item_ids: list[str] | None = None) -> None:
        n = len(values)
        ids = item_ids or [str(i) for i in range(n)]
        preds = predictions or [None] * n
        refs = references or [None] * n
        self.samples.extend(
            {"task": task, "item_id": i, "metric": metric, "value": float(v), "prediction": p, "reference": r}
            for i, v, p, r in zip(ids, values, preds, refs)
        )


class Task:
    """Base class. A task registers itself with `@harness.tasks.register` and names its typed options
    (`config_class`, built by `harness.tasks.build` from the task node of the run config)."""

    name: ClassVar[str]
    config_class: ClassVar[type[TaskConfig]] = TaskConfig

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Task:
        """This task with `options` (a `task` node) typed and validated by its `config_class`."""
        return cls(cls.config_class.of(options))

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        raise NotImplementedError

    def training_pair(self, item: dict) -> tuple[str, str]:
        """(prompt, target) text; the loss is taken on the target only."""
        raise NotImplementedError

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        raise NotImplementedError

    def local_datasets(self) -> list[LocalDataset]:
        """The files this task's `local` source reads under data.dir, with their parsers and the hub
        rows that make them (`python -m harness.data fetch` writes them, `check` verifies them)."""
        raise NotImplementedError(f"task {self.name} does not declare its local files (Task.local_datasets)")

    def loss_batch_size(self) -> int:
        """Sequences per forward pass when the run scores held-out training pairs (validation loss)."""
        return 8

    def for_encoder(self) -> Task | None:
        """This task scored through a classification head on an encoder (`model.kind: encoder`), or
        None when it needs a causal language model (generation, likelihood of free text)."""
        return None
