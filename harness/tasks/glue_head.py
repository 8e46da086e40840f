"""GLUE for encoders (`model.kind: encoder`, e.g. all-MiniLM-L6-v2): a classification head on the
encoder, as in BERT's GLUE fine-tuning, instead of the causal-LM protocol's log-likelihood over
label words (harness/tasks/glue.py, whose items, label maps and metrics this reuses).

The protocol: an item's text fields (one sentence, or a pair such as MRPC's two sentences or
QNLI's question and sentence) go through the tokenizer as one or two segments, cut to
`train.max_seq_len` tokens; the head has one output per label (STS-B: one output, a regression on
the 0-5 score). Training minimises the model's own loss (cross-entropy; STS-B mean squared error);
evaluation takes the argmax of the head's outputs (STS-B: the raw output), `task.batch_size` items
per forward pass, and reports the causal path's metric names (acc, f1, mcc, pearson, spearman).

Marking: results are filed under the task name `<task>_head` (e.g. `glue_sst2_head`, and
`glue_qnli_devslice_head` for the carved QNLI), with metric versions `<task>_head/<metric>/v1` and
`protocol: classification_head` in the run's data identity; so head and log-likelihood numbers are
never averaged, compared or reported as one task, even for the same model. Log-likelihood settings
of the task config have no meaning here: `evaluator` must be native and `chat_template` false.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.models import classifier
from harness.tasks.base import EvalContext, Task, TaskData
from harness.tasks.choice import ChoiceTaskConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PROTOCOL = "classification_head"
SUFFIX = "_head"
VERSION = "v1"


class LabelWordTask(Protocol):
    """What the head reuses of a GLUE task scored by label words (harness/tasks/glue.py's `Glue`, which
    builds the head: typed here by shape so that this module does not import it back)."""

    cfg: ChoiceTaskConfig
    name: str
    spec: Any  # harness.tasks.glue.GlueSpec: label type, text columns, label words

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData: ...

    def label_metrics(self, ctx: EvalContext, data: TaskData, preds: list[int],
                      version: Callable[[str], str]) -> list[Metric]: ...

    def score_metrics(self, ctx: EvalContext, data: TaskData, predicted: list[float], sample_metric: str,
                      version: Callable[[str], str]) -> list[Metric]: ...


class GlueHead(Task):
    cfg: ChoiceTaskConfig

    def __init__(self, glue: LabelWordTask):
        super().__init__(glue.cfg)
        self.glue, self.name = glue, glue.name
        self.regression = glue.spec.label is float  # STS-B: a similarity score, not a class
        self.text_fields = [f for f in glue.spec.columns if f != "label"]

    @property
    def num_labels(self) -> int:
        return 1 if self.regression else len(self.glue.spec.choices)

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        c = self.cfg
        if c.evaluator != "native":
            raise HarnessError(f"task.evaluator={c.evaluator} scores label words by log-likelihood; an encoder is "
                               "scored through its classification head: set task.evaluator=native")
        if c.chat_template:
            raise HarnessError("task.chat_template=true formats prompts for a chat LM; an encoder reads the raw "
                               "sentences: set task.chat_template=false")
        data = self.glue.load(data_cfg)
        name = f"{data.name}{SUFFIX}"
        return dataclasses.replace(data, name=name, identity={**data.identity, "task": name, "protocol": PROTOCOL})

    def texts(self, items: list[dict]) -> list[list[str]]:
        return [[x[f] for f in self.text_fields] for x in items]

    def examples(self, tok: PreTrainedTokenizerBase, items: list[dict], max_len: int,
                 cache_root: Path | None = None) -> list[classifier.Example]:
        """Training examples: the item's segments and its label (a float score for regression)."""
        labels = [float(x["label"]) if self.regression else int(x["label"]) for x in items]
        return classifier.encode(tok, self.texts(items), labels, max_len, cache_root)

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        outputs = classifier.predict(ctx.model, ctx.tokenizer, self.texts(data.eval), self.cfg.batch_size,
                                     ctx.max_len, ctx.device)
        version = lambda m: f"{self.name}{SUFFIX}/{m}/{VERSION}"
        if self.regression:
            return self.glue.score_metrics(ctx, data, outputs[:, 0].tolist(), "predicted_score", version)
        return self.glue.label_metrics(ctx, data, outputs.argmax(-1).tolist(), version)
