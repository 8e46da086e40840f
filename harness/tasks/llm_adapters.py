"""The LLM-Adapters evaluation suites (Hu et al. 2023, "LLM-Adapters", arXiv:2304.01933).

A suite is a set of eval datasets sharing one training set: `llm_adapters_math` trains on
math_10k and evaluates GSM8K, AQuA, MAWPS, SVAMP, AddSub, MultiArith, SingleEq;
`llm_adapters_commonsense` trains on commonsense_170k and evaluates BoolQ, PIQA, SIQA, HellaSwag,
WinoGrande, ARC-e, ARC-c, OBQA. One run trains once and writes one `accuracy` row per dataset
(task column = the dataset, e.g. `svamp`) plus the suite's unweighted mean over datasets
(`accuracy_avg`, task column = the suite), as the paper's "Avg" column.

Protocol (LLM-Adapters' evaluate.py / commonsense_evaluate.py): the Alpaca prompt around each
item's `instruction`, the model's response decoded, then
* math numbers: the last number of the response (commas removed) within 0.001 of the answer;
* AQuA (and MathQA): the first of the letters A-E anywhere in the response;
* commonsense: the first match of the dataset's answer words (`true|false`, `solution1|2`,
  `answer1..5`, `ending1..4`, `option1|2`) equals the answer.
Differences, kept in the config and stated in the README: greedy decoding instead of their 4-beam
search, and a stop at `### Instruction:` (text after it is never part of the response).

`scoring: loglik` scores the answer texts of ARC/OBQA/SIQA/PIQA items by log-likelihood after
`Question: ...\\nAnswer:` (lm-eval's ARC format): the general forgetting suite uses it, because
base models rarely follow the answer-word format that only fine-tuning teaches.

Training sets: math_10k / commonsense_170k (`train_pool`, the published protocol). Where they are
missing, a named substitute that never shares an item with the eval sets can be chosen; its runs
are filed under their own task name (`<suite>~<pool>`, e.g. `llm_adapters_math~gsm8k_train`), never comparable to
published numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.config.checks import option
from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.data.layout import HubRequest, LocalDataset, json_file
from harness.data.sources import first_available, hub_loader, read_local
from harness.scoring.loglik import best_choice
from harness.tasks import from_conf, register
from harness.tasks.base import EvalContext, GeneratedAnswerConfig, Task, TaskData
from harness.tasks.metamathqa import SUBSTITUTE_MARK
from harness.tasks.prompting import render

NUMBER = re.compile(r"-?\d+\.?\d*")  # evaluate.py's extract_answer_number
LETTER = re.compile(r"A|B|C|D|E")  # evaluate.py's extract_answer_letter
OPTION = re.compile(r"(?:Answer|Solution)(\d):\s*")  # option markers inside commonsense instructions
METRIC_VERSION = "v1"


@dataclass(frozen=True)
class Member:
    """One eval dataset: its name in results, its folder under LLM-Adapters' `dataset/`, and how
    its answers are read: `number`, `letter`, or a regex of answer words."""

    name: str
    folder: str
    answer: str

    @property
    def kind(self) -> str:
        return self.answer if self.answer in ("number", "letter") else "label"


def _words(prefix: str, n: int) -> str:
    return "|".join(f"{prefix}{i}" for i in range(1, n + 1))


MATH = {m.name: m for m in (
    Member("gsm8k", "gsm8k", "number"), Member("aqua", "AQuA", "letter"), Member("mawps", "mawps", "number"),
    Member("svamp", "SVAMP", "number"), Member("addsub", "AddSub", "number"),
    Member("multiarith", "MultiArith", "number"), Member("singleeq", "SingleEq", "number"),
    Member("mathqa", "mathqa", "letter"),  # in the repository, not in the paper's tables
)}
COMMONSENSE = {m.name: m for m in (
    Member("boolq", "boolq", "true|false"), Member("piqa", "piqa", _words("solution", 2)),
    Member("siqa", "social_i_qa", _words("answer", 5)), Member("hellaswag", "hellaswag", _words("ending", 4)),
    Member("winogrande", "winogrande", _words("option", 2)), Member("arc_e", "ARC-Easy", _words("answer", 5)),
    Member("arc_c", "ARC-Challenge", _words("answer", 5)), Member("obqa", "openbookqa", _words("answer", 5)),
)}


def extract_number(output: str) -> float:
    """The last number in the output (commas dropped); inf when there is none, as upstream."""
    found = NUMBER.findall(output.replace(",", ""))
    return float(found[-1]) if found else float("inf")


def extract_letter(output: str) -> str:
    found = LETTER.findall(output.strip())
    return found[0] if found else ""


def extract_label(output: str, words: str) -> str:
    found = re.findall(words, output.strip())
    return found[0] if found else ""


def extract(member: Member, output: str) -> str:
    """The prediction as text (for the samples table)."""
    if member.kind == "number":
        return repr(extract_number(output))
    if member.kind == "letter":
        return extract_letter(output)
    return extract_label(output, member.answer)


def is_correct(member: Member, output: str, answer: str, tolerance: float) -> bool:
    if member.kind == "number":
        return abs(float(answer) - extract_number(output)) <= tolerance
    return extract(member, output) == answer


def parse_choices(instruction: str) -> tuple[str, list[str]]:
    """(question, option texts) of an `AnswerN:`/`SolutionN:` instruction."""
    body = instruction.partition(": ")[2].rsplit("\n\nAnswer format:", 1)[0]
    parts = OPTION.split(body)
    return parts[0].strip(), [text.strip() for text in parts[2::2]]


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def gsm8k_as_instruction(item: dict) -> dict:
    """A GSM8K train item in LLM-Adapters' format: the rationale without calculator annotations,
    ending in "The answer is N." as math_10k's responses do."""
    rationale, _, answer = item["answer"].rpartition("####")
    rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
    return {"instruction": item["question"], "output": f"{rationale}\nThe answer is {answer.strip()}."}


@dataclass(frozen=True)
class LLMAdaptersConfig(GeneratedAnswerConfig):
    """An LLM-Adapters suite's options (conf/task/llm_adapters_<suite>.yaml): those of every
    generated-answer task, and:"""

    datasets: list[str] = option("text list", distinct=True)
    """The suite's eval datasets to run (a subset of its members, e.g. [boolq, piqa])."""
    train_pool: str | None = option("text", nullable=True)
    """A key of `pools`: the published training set, or a named substitute filed as `<suite>~<pool>`;
    null: eval items only (a forgetting probe; a run cannot train on it)."""
    train_limit: int | None = option("int", low=1, nullable=True)
    """The first N training items after overlap removal; null: all."""
    scoring: str = option("text", choices=("generate", "loglik"))
    """generate: greedy decoding and answer extraction (the protocol); loglik: the answer texts by
    log-likelihood (arc_e, arc_c, obqa, siqa, piqa only)."""
    sources: dict[str, Any]
    """`local_subdir` under data.dir, and `hub_eval` (the pinned test files, `{folder}` per dataset)."""
    pools: dict[str, Any]
    """Training pools by name: `hub`/`local`/`url` of one file, `folders` (member train splits), or
    `task` (another task's train split)."""

    def validate(self) -> None:
        if self.train_pool is not None and self.train_pool not in self.pools:
            raise HarnessError(f"task.train_pool={self.train_pool} is unknown; valid: {', '.join(self.pools)} (or null: eval items only)")


@dataclass(frozen=True)
class LLMAdaptersMathConfig(LLMAdaptersConfig):
    """The math suite's options: the suite's, and:"""

    tolerance: float = option("number", low=0)
    """A number counts as correct within this distance of the answer (evaluate.py: 0.001)."""


class LLMAdaptersSuite(Task):
    members: dict[str, Member]
    cfg: LLMAdaptersConfig
    config_class = LLMAdaptersConfig
    tolerance = 0.0  # numbers: only the math suite has them

    def __init__(self, cfg: LLMAdaptersConfig):
        super().__init__(cfg)
        unknown = [d for d in cfg.datasets if d not in self.members]
        if unknown or not cfg.datasets:
            raise HarnessError(f"task.datasets has unknown {unknown or 'nothing'}; valid: {', '.join(self.members)}")

    def _selected(self) -> list[Member]:
        return [self.members[d] for d in self.cfg.datasets]

    def _json_sources(self, data_cfg: Mapping[str, Any], hub: Mapping[str, Any] | None, relative: str,
                      what: str, fix: str = "") -> tuple[str, list[dict]]:
        """A JSON array from the hub (or a pinned URL) or `<data.dir>/<local_subdir>/<relative>`."""
        subdir = self.cfg.sources["local_subdir"]

        def local() -> list[dict]:
            return read_local(data_cfg.get("dir"), f"{subdir}/{relative}", lambda path: json.loads(path.read_text(encoding="utf-8")))

        loaders = {"local": local}
        if hub:
            loaders["hub"] = hub_loader(hub["path"], hub.get("name"), hub.get("split", "train"), hub.get("data_files"))
        try:
            return first_available(what, loaders, list(data_cfg["order"]))
        except HarnessError as miss:
            raise type(miss)(f"{miss}{fix}") from None  # still DataMissing: callers may treat data as optional

    def _eval_sets(self, data_cfg: Mapping[str, Any], members: list[Member]) -> tuple[str, dict[str, list[dict]]]:
        hub = self.cfg.sources["hub_eval"]
        sources, sets = set(), {}
        for m in members:
            spec = {**hub, "data_files": hub["data_files"].format(folder=m.folder)}
            fix = f"; or leave it out: task.datasets=[{','.join(x.name for x in members if x != m)}]"
            kind, sets[m.name] = self._json_sources(data_cfg, spec, f"dataset/{m.folder}/test.json",
                                                    f"{self.name} eval set {m.name}", fix)
            sources.add(kind)
        return ",".join(sorted(sources)), sets

    def _train_pool(self, data_cfg: Mapping[str, Any]) -> tuple[str, str, list[dict]]:
        """(task name results are filed under, source, items) of the configured training pool."""
        name, pools = self.cfg.train_pool, self.cfg.pools
        if name is None:  # eval items only (the general forgetting suite); a run cannot train on it
            return self.name, "none", []
        pool = pools[name]
        substitute = f"{self.name}{SUBSTITUTE_MARK}{name}"  # the project's name for runs on a substitute pool
        if "task" in pool:  # GSM8K's official train split, through the registered gsm8k task's sources
            # Its packaged fallback trains on test items: never a substitute pool.
            order = [k for k in data_cfg["order"] if k != "package"]
            data = from_conf(pool["task"]).load({**data_cfg, "order": order})
            return substitute, data.identity["source"], [gsm8k_as_instruction(x) for x in data.train]
        if "folders" in pool:  # the train splits of some member datasets
            items, sources = [], set()
            for folder in pool["folders"]:
                hub = {**pool["hub"], "data_files": pool["hub"]["data_files"].format(folder=folder)}
                kind, rows = self._json_sources(data_cfg, hub, f"dataset/{folder}/train.json", f"{self.name} train split {folder}")
                items += rows
                sources.add(kind)
            return substitute, ",".join(sorted(sources)), items
        substitutes = [k for k in pools if k != name]
        fix = (f"; provide {pool['local']} under <data.dir>/{self.cfg.sources['local_subdir']}/ (from {pool['url']}), "
               f"or train on a substitute that is not the published protocol: task.train_pool={'|'.join(substitutes)}")
        kind, items = self._json_sources(data_cfg, pool.get("hub"), pool["local"], f"{self.name} training set {name}", fix)
        return self.name, kind, items

    def local_datasets(self) -> list[LocalDataset]:
        hub = self.cfg.sources["hub_eval"]
        return [*(self._json_dataset(m.folder, f"dataset/{m.folder}/test.json", {**hub, "data_files": hub["data_files"].format(folder=m.folder)})
                  for m in self._selected()), *self._pool_datasets()]

    def _pool_datasets(self) -> list[LocalDataset]:
        """The files of the configured training pool (`train_pool`), as `_train_pool` reads them."""
        name = self.cfg.train_pool
        if name is None:
            return []
        pool = self.cfg.pools[name]
        if "task" in pool:
            return from_conf(pool["task"]).local_datasets()
        if "folders" in pool:
            return [self._json_dataset(folder, f"dataset/{folder}/train.json",
                                       {**pool["hub"], "data_files": pool["hub"]["data_files"].format(folder=folder)})
                    for folder in pool["folders"]]
        return [self._json_dataset(name, pool["local"], pool.get("hub"))]

    def _json_dataset(self, name: str, relative: str, hub: Mapping[str, Any] | None) -> LocalDataset:
        """`<local_subdir>/<relative>`, a JSON array, served by `hub` as `_json_sources` asks it."""
        subdir = self.cfg.sources["local_subdir"]
        request = HubRequest(hub["path"], hub.get("name"), hub.get("split", "train"), hub.get("data_files")) if hub else None
        return LocalDataset(f"{subdir}/{name}", (json_file(f"{subdir}/{relative}", request),))

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        members = self._selected()
        eval_source, sets = self._eval_sets(data_cfg, members)
        task_name, train_source, pool = self._train_pool(data_cfg)
        # No training item may repeat an eval item of any member (whole test sets, not only n_eval);
        # applied to every pool, and the number dropped is part of the data identity.
        seen = {_normalize(x["instruction"]) for rows in sets.values() for x in rows}
        train = [{"instruction": x["instruction"], "output": x["output"]} for x in pool if _normalize(x["instruction"]) not in seen]
        train = train[: self.cfg.train_limit]
        n = self.cfg.n_eval
        evaluation = [
            {"id": f"{m.name}/{i}", "dataset": m.name, "instruction": x["instruction"], "answer": str(x["answer"])}
            for m in members for i, x in enumerate(sets[m.name][:n])
        ]
        identity = {
            "task": task_name, "source": eval_source, "train_source": train_source, "train_pool": self.cfg.train_pool,
            "n_train_pool": len(train), "n_train_dropped_overlap": len(pool) - len(train),
            "n_eval": {m.name: len(sets[m.name][:n]) for m in members},
            "train_sha256": hash_object(train, 64), "eval_sha256": hash_object(evaluation, 64),
        }
        return TaskData(task_name, train, evaluation, identity)

    def prompt(self, item: dict) -> str:
        return self.cfg.prompt_template.format(instruction=item["instruction"])

    def training_pair(self, item: dict) -> tuple[str, str]:
        # task.train_prompt_template (null: prompt_template): the training text's own template,
        # e.g. finetune.py's literal one, indented unlike evaluate.py's (docs/protocols.md)
        template = self.cfg.train_prompt_template or self.cfg.prompt_template
        return template.format(instruction=item["instruction"]), item["output"]

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        score = self._score_loglik if self.cfg.scoring == "loglik" else self._score_generated
        rows = []
        for m in self._selected():
            items = [x for x in data.eval if x["dataset"] == m.name]
            values, version = score(ctx, m, items)
            mean, se = mean_and_stderr(values)
            rows.append(Metric(m.name, "accuracy", mean, se, len(values), True, version))
        # The paper's "Avg": unweighted over datasets; its stderr from the per-dataset ones.
        errors = [r.stderr for r in rows]
        se = (sum(e * e for e in errors) ** 0.5 / len(rows)) if None not in errors else None
        average = sum(r.value for r in rows) / len(rows)
        rows.append(Metric(data.name, "accuracy_avg", average, se, sum(r.n for r in rows), True,
                           f"llm_adapters/{self.cfg.scoring}_accuracy_avg/{METRIC_VERSION}"))
        return rows

    def _score_generated(self, ctx: EvalContext, m: Member, items: list[dict]) -> tuple[list[float], str]:
        c = self.cfg
        prompts = [render(ctx.tokenizer, self.prompt(x), c.chat_template) for x in items]
        outputs = ctx.generate(prompts, c.max_new_tokens, c.stop, c.eval_batch_size, desc=f"eval {m.name}",
                               num_beams=c.num_beams)
        values = [float(is_correct(m, o, x["answer"], self.tolerance)) for o, x in zip(outputs, items)]
        predictions = [f"{extract(m, o)} <- {o}" for o in outputs]
        ctx.add_samples(m.name, "accuracy", values, predictions, [x["answer"] for x in items], [x["id"] for x in items])
        return values, f"llm_adapters/{m.kind}_accuracy/{METRIC_VERSION}"

    def _score_loglik(self, ctx: EvalContext, m: Member, items: list[dict]) -> tuple[list[float], str]:
        if not m.answer.startswith(("answer", "solution")):
            raise HarnessError(f"task.scoring=loglik needs option texts, which {m.name} items lack; use it with arc_e, arc_c, obqa, siqa, piqa")
        parsed = [parse_choices(x["instruction"]) for x in items]
        contexts = [f"Question: {question}\nAnswer:" for question, _ in parsed]
        choices = [[f" {text}" for text in texts] for _, texts in parsed]
        scores = ctx.log_likelihoods(contexts, choices, self.cfg.eval_batch_size, desc=f"eval {m.name}",
                                     max_len=ctx.max_len)
        picked = [best_choice(s) for s in scores]
        gold = [int(x["answer"][-1]) - 1 for x in items]
        values = [float(p == g) for p, g in zip(picked, gold)]
        ctx.add_samples(m.name, "accuracy", values, [str(p + 1) for p in picked], [str(g + 1) for g in gold],
                        [x["id"] for x in items])
        return values, f"llm_adapters/choice_accuracy/{METRIC_VERSION}"


@register
class LLMAdaptersMath(LLMAdaptersSuite):
    name = "llm_adapters_math"
    members = MATH
    cfg: LLMAdaptersMathConfig
    config_class = LLMAdaptersMathConfig

    @property
    def tolerance(self) -> float:  # type: ignore[override]
        return self.cfg.tolerance


@register
class LLMAdaptersCommonsense(LLMAdaptersSuite):
    name = "llm_adapters_commonsense"
    members = COMMONSENSE
