"""GLUE (Wang et al., 2019, arXiv:1804.07461) for causal LMs: log-likelihood over verbalised labels.
(Encoders score the same items through a classification head: harness/tasks/glue_head.py.)

One registered task per dataset: `glue_sst2`, `glue_mrpc`, `glue_rte`, `glue_cola`, `glue_qnli`,
`glue_stsb`, and `glue_mnli`, `glue_qqp` where their data is present. Prompts and label words are
lm-eval's default `glue` tasks (zero-shot), so `evaluator=lm_eval` runs lm-eval's own yaml on the
same items. Evaluation: the first `n_eval` items of the dev split (GLUE's test labels are hidden);
training: the train split.

Official metrics: accuracy (SST-2, RTE, QNLI, MNLI-m; plus F1 of the positive class for MRPC and
QQP), Matthews correlation (CoLA), Pearson and Spearman correlation (STS-B).

STS-B (a regression task; lm-eval has no causal-LM protocol for it) is scored here as follows:
the prompt asks for a similarity from 0 to 5, the six answers " 0".." 5" are scored by
log-likelihood, and the prediction is their expected value under the softmax of those
log-likelihoods (a continuous score, so Pearson/Spearman see more than an argmax would give).
Training targets are the gold score rounded to the nearest integer.

Sources: hub `nyu-mll/glue`; local `<data.dir>/glue/<TASK>/{train,dev}.tsv` (the GLUE download
script's layout). The local QNLI has no train.tsv: `sources.local.carve` (on for QNLI) then trains
on dev items after the first `eval_pool` and evaluates within the first `eval_pool`, filed under
the task name `glue_qnli_devslice` (not comparable to published dev numbers). Without a carve, a
missing train file is a one-line error naming the file.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric
from harness.data.layout import HubRequest, LocalDataset, LocalFile
from harness.data.sources import SourceUnavailable, first_available, hub_loader, read_local
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.scoring.loglik import ChoiceScore, best_choice
from harness.tasks import register
from harness.tasks.base import EvalContext, TaskData
from harness.tasks.choice import ChoiceTask, ChoiceTaskConfig, accuracy_metric
from harness.tasks.glue_head import GlueHead

VERSION = "v1"
ENTAILMENT = {"entailment": 0, "not_entailment": 1}


def _mnli_text(x: dict) -> str:
    hypothesis = x["hypothesis"].strip()
    return f"{x['premise']}\nQuestion: {hypothesis}{'' if hypothesis.endswith('.') else '.'} True, False or Neither?\nAnswer:"


@dataclass(frozen=True)
class GlueSpec:
    """One GLUE dataset: its files, its hub schema, lm-eval's prompt and label words, its metrics.
    `columns` maps hub field -> local column (a header name, or an index for headerless CoLA)."""

    key: str
    local_dir: str
    eval_file: str
    hub_eval_split: str
    columns: dict[str, str | int]
    text: Callable[[dict], str]
    choices: tuple[str, ...]
    metrics: tuple[str, ...]
    lm_eval_yaml: str | None
    label: Callable[[str], Any] = int


SPECS = [
    GlueSpec("sst2", "SST-2", "dev.tsv", "validation", {"sentence": "sentence", "label": "label"},
             lambda x: f"{x['sentence']}\nQuestion: Is this sentence positive or negative?\nAnswer:",
             ("negative", "positive"), ("acc",), "glue/sst2/default.yaml"),
    GlueSpec("mrpc", "MRPC", "dev.tsv", "validation",
             {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
             lambda x: f"Sentence 1: {x['sentence1']}\nSentence 2: {x['sentence2']}\nQuestion: Do both sentences mean the same thing?\nAnswer:",
             ("no", "yes"), ("acc", "f1"), "glue/mrpc/default.yaml"),
    GlueSpec("rte", "RTE", "dev.tsv", "validation", {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
             lambda x: f"{x['sentence1']}\nQuestion: {x['sentence2']} True or False?\nAnswer:",
             ("True", "False"), ("acc",), "glue/rte/default.yaml", ENTAILMENT.__getitem__),
    GlueSpec("cola", "CoLA", "dev.tsv", "validation", {"sentence": 3, "label": 1},
             lambda x: f"{x['sentence']}\nQuestion: Does this sentence make sense?\nAnswer:",
             ("no", "yes"), ("mcc",), "glue/cola/default.yaml"),
    GlueSpec("qnli", "QNLI", "dev.tsv", "validation", {"question": "question", "sentence": "sentence", "label": "label"},
             lambda x: f"{x['question']}\n{x['sentence']}\nQuestion: Does this response answer the question?\nAnswer:",
             ("yes", "no"), ("acc",), "glue/qnli/default.yaml", ENTAILMENT.__getitem__),
    GlueSpec("mnli", "MNLI", "dev_matched.tsv", "validation_matched",
             {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"}, _mnli_text,
             ("True", "Neither", "False"), ("acc",), "glue/mnli/default.yaml",
             {"entailment": 0, "neutral": 1, "contradiction": 2}.__getitem__),
    GlueSpec("qqp", "QQP", "dev.tsv", "validation", {"question1": "question1", "question2": "question2", "label": "is_duplicate"},
             lambda x: f"Question 1: {x['question1']}\nQuestion 2: {x['question2']}\nQuestion: Do both questions ask the same thing?\nAnswer:",
             ("no", "yes"), ("acc", "f1"), "glue/qqp/default.yaml"),
    GlueSpec("stsb", "STS-B", "dev.tsv", "validation", {"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"},
             lambda x: f"Sentence 1: {x['sentence1']}\nSentence 2: {x['sentence2']}\nQuestion: How similar are the two sentences, on a scale from 0 to 5?\nAnswer:",
             ("0", "1", "2", "3", "4", "5"), ("pearson", "spearman"), None, float),
]
# lm-eval has no STS-B task: its run uses this inline config, the same prompt as SPECS' stsb text.
STSB_LM_EVAL = {
    "output_type": "multiple_choice",
    "doc_to_text": "Sentence 1: {{sentence1}}\nSentence 2: {{sentence2}}\nQuestion: How similar are the two sentences, on a scale from 0 to 5?\nAnswer:",
    "doc_to_choice": ["0", "1", "2", "3", "4", "5"],
    "doc_to_target": "{{label | round | int}}",
    "metric_list": [{"metric": "acc"}],
}


def read_tsv(path, spec: GlueSpec) -> list[dict]:
    """GLUE tsv rows in the hub's schema. Quotes are text, not CSV quoting (MRPC has unbalanced ones)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = {} if spec.key == "cola" else {name: i for i, name in enumerate(rows.pop(0))}
    index = {field: header.get(col, col) for field, col in spec.columns.items()}
    return [{field: spec.label(row[i]) if field == "label" else row[i] for field, i in index.items()} for row in rows]


def tsv_bytes(spec: GlueSpec, rows: list[dict]) -> bytes:
    """Hub rows as the tsv `read_tsv` reads: a header of the spec's local columns (headerless CoLA:
    its columns by position), labels as the file's words; text holding tabs or line breaks is refused."""
    positional = all(isinstance(col, int) for col in spec.columns.values())
    width = max(spec.columns.values()) + 1 if positional else len(spec.columns)
    place = spec.columns if positional else {field: i for i, field in enumerate(spec.columns)}
    lines = [] if positional else ["\t".join(map(str, spec.columns.values()))]
    for row in rows:
        cells = [""] * width
        for field, i in place.items():
            cells[i] = _label_text(spec, row[field]) if field == "label" else str(row[field])
            if any(c in cells[i] for c in "\t\r\n"):
                raise ValueError(f"a {spec.key} {field} holds a tab or line break, which GLUE's tsv cannot carry")
        lines.append("\t".join(cells))
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _label_text(spec: GlueSpec, value: Any) -> str:
    """The file's text for a hub label: the inverse of `spec.label`."""
    words = getattr(spec.label, "__self__", None)  # label words: a dict's __getitem__
    if not isinstance(words, dict):
        return str(value)
    word = next((w for w, v in words.items() if v == value), None)
    if word is None:
        raise ValueError(f"{spec.key} label {value!r} has no word in {sorted(words)}")
    return word


@dataclass(frozen=True)
class GlueConfig(ChoiceTaskConfig):
    """GLUE's options (conf/task/glue/common.yaml): those of every log-likelihood choice task.
    `sources.local.carve` (QNLI): `{eval_pool, task_name}`, see the module docstring."""

    def validate(self) -> None:
        super().validate()
        if self.num_fewshot != 0:
            raise HarnessError(f"task.num_fewshot={self.num_fewshot}: GLUE follows lm-eval's zero-shot protocol; set task.num_fewshot=0")


class Glue(ChoiceTask):
    cfg: GlueConfig
    config_class = GlueConfig
    spec: GlueSpec

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        c, spec = self.cfg, self.spec
        hub, carve = c.sources["hub"], c.sources["local"].get("carve")
        subdir = f"{c.sources['local']['subdir']}/{spec.local_dir}"

        def from_hub():
            return [hub_loader(hub["path"], spec.key, s)() for s in ("train", spec.hub_eval_split)] + [None]

        def from_local():
            read = lambda name: read_local(data_cfg.get("dir"), f"{subdir}/{name}", lambda path: read_tsv(path, spec))
            dev = read(spec.eval_file)
            try:
                return [read("train.tsv"), dev, None]
            except SourceUnavailable as missing:
                if not carve:
                    raise SourceUnavailable(f"{missing} (no training split for {self.name})") from None
                # Documented carve: dev items from eval_pool on train, the first eval_pool evaluate.
                return [dev[carve["eval_pool"]:], dev[: carve["eval_pool"]], carve["task_name"]]

        kind, (train, dev, carved_name) = first_available(
            f"task {self.name}", {"hub": from_hub, "local": from_local}, list(data_cfg["order"]))
        evaluation = dev[: c.n_eval]
        name = carved_name or self.name
        identity = {
            "task": name, "source": kind, "n_train_pool": len(train), "n_eval": len(evaluation),
            "train_sha256": hash_object(train, 64), "eval_sha256": hash_object(evaluation, 64),
            **({"carve": f"train = dev[{carve['eval_pool']}:], eval within dev[:{carve['eval_pool']}]"} if carved_name else {}),
        }
        return TaskData(name, [self.hub_fields(x) for x in train], [self.hub_fields(x) for x in evaluation], identity)

    def hub_fields(self, item: dict) -> dict:
        """Only the fields the prompt and label use (the hub adds `idx`; hashes must not depend on it)."""
        return {k: item[k] for k in self.spec.columns}

    def local_datasets(self) -> list[LocalDataset]:
        spec, hub, local = self.spec, self.cfg.sources["hub"], self.cfg.sources["local"]
        subdir = f"{local['subdir']}/{spec.local_dir}"
        read, render = functools.partial(read_tsv, spec=spec), functools.partial(tsv_bytes, spec)
        train = HubRequest(hub["path"], spec.key, "train")
        dev = HubRequest(hub["path"], spec.key, spec.hub_eval_split)
        return [LocalDataset(subdir, (LocalFile(f"{subdir}/train.tsv", read, (train,), render, required=not local.get("carve")),
                                      LocalFile(f"{subdir}/{spec.eval_file}", read, (dev,), render)))]

    def context(self, item: dict) -> str:
        return self.spec.text(item)

    def choices(self, item: dict) -> list[str]:
        return [f" {c}" for c in self.spec.choices]

    def training_pair(self, item: dict) -> tuple[str, str]:
        label = round(item["label"]) if self.spec.key == "stsb" else item["label"]
        return self.context(item), f" {self.spec.choices[label]}"

    def lm_eval_tasks(self, data: TaskData) -> list[tuple[LmEvalTask, list[int]]]:
        overrides = {} if self.spec.lm_eval_yaml else STSB_LM_EVAL
        task = LmEvalTask(f"harness_{self.name}", self.spec.lm_eval_yaml, data.eval, None, overrides)
        return [(task, list(range(len(data.eval))))]

    def metrics(self, ctx: EvalContext, data: TaskData, scores: list[list[ChoiceScore]]) -> list[Metric]:
        version = lambda m: f"{self.name}/{m}/{VERSION}"
        if self.spec.key == "stsb":
            return self.score_metrics(ctx, data, [_expected_score(row) for row in scores], "expected_score", version)
        return self.label_metrics(ctx, data, [best_choice(s) for s in scores], version)

    def label_metrics(self, ctx: EvalContext, data: TaskData, preds: list[int],
                      version: Callable[[str], str]) -> list[Metric]:
        """The spec's metrics of predicted label indices against data.eval's labels."""
        from sklearn.metrics import f1_score, matthews_corrcoef

        golds = [x["label"] for x in data.eval]
        words = self.spec.choices
        correct = [float(p == g) for p, g in zip(preds, golds)]
        rows = [accuracy_metric(ctx, data.name, "acc", correct, [words[p] for p in preds], [words[g] for g in golds],
                                _item_ids(golds), version("acc"))]
        whole_set = {"f1": lambda: f1_score(golds, preds, zero_division=0.0), "mcc": lambda: matthews_corrcoef(golds, preds)}
        for metric in self.spec.metrics:
            if metric in whole_set:  # corpus-level statistics: no per-item stderr
                rows.append(Metric(data.name, metric, float(whole_set[metric]()), None, len(golds), True, version(metric)))
        return rows

    def score_metrics(self, ctx: EvalContext, data: TaskData, predicted: list[float], sample_metric: str,
                      version: Callable[[str], str]) -> list[Metric]:
        """Pearson and Spearman correlation of predicted similarities with data.eval's gold scores;
        the per-item predictions go to the samples as `sample_metric`."""
        from scipy.stats import pearsonr, spearmanr

        golds = [x["label"] for x in data.eval]
        ctx.add_samples(data.name, sample_metric, predicted, [f"{p:.3f}" for p in predicted],
                        [f"{g:.3f}" for g in golds], _item_ids(golds))
        rows = []
        for metric, stat in (("pearson", pearsonr), ("spearman", spearmanr)):
            value = float(stat(predicted, golds)[0]) if len(set(predicted)) > 1 and len(set(golds)) > 1 else float("nan")
            rows.append(Metric(data.name, metric, value, None, len(golds), True, version(metric)))
        return rows

    def for_encoder(self) -> GlueHead:
        return GlueHead(self)


def _item_ids(golds: list) -> list[str]:
    return [str(i) for i in range(len(golds))]


def _expected_score(row: list[ChoiceScore]) -> float:
    """Expected value of 0..5 under the softmax over the six answers' log-likelihoods."""
    top = max(s.logprob for s in row)
    weights = [math.exp(s.logprob - top) for s in row]
    return sum(k * w for k, w in enumerate(weights)) / sum(weights)


for _spec in SPECS:
    register(type(f"Glue_{_spec.key}", (Glue,), {"name": f"glue_{_spec.key}", "spec": _spec}))
