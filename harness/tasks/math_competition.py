"""MetaMathQA -> MATH (Hendrycks et al., 2021, arXiv:2103.03874): train on MetaMathQA's `query` /
`response` pairs, evaluate greedy generations on the MATH test set (5,000 competition problems in
seven subjects), as the MetaMath (arXiv:2309.12284), PiSSA and SORSA papers report "MATH".

Training pool (`task.train_pool`), as the `metamathqa_gsm8k` task's:
* `metamathqa`: hub `meta-math/MetaMathQA`, or `<data.dir>/metamathqa/MetaMathQA-395K.json`, tried
  in `data.order`; `task.train_limit` keeps the first N rows (PiSSA/SORSA: 100,000).
* `gsm8k_train`: an explicit offline substitute, GSM8K's train split (the `gsm8k` task's hub/local
  sources; never its packaged test slice). Answers are put in MetaMathQA's form (calculator
  annotations `<<...>>` dropped, "The answer is: N" appended), so that the extraction below can read
  what the model learns. Runs are filed as `metamathqa_math~gsm8k_train`: not the published protocol.
* null: eval items only (an eval-only spec, e.g. a forgetting probe); a run cannot train on it.

Evaluation items, sources tried in `data.order` (no package source):
* hub: `EleutherAI/hendrycks_math`, one config per subject, split `test` (a mirror of the official
  release). The papers did not use a hub copy: MetaMath's eval_math.py and SORSA's test.py read
  MetaMath's `data/test/MATH_test.jsonl`; PiSSA's scripts read the `metamath` test split of
  `fxmeng/pissa-dataset` (GSM8K and MATH mixed, gold answers pre-extracted: not accepted here).
* local: `<data.dir>/math/test.jsonl`, JSON Lines in either of two row formats:
  - the official release / hub mirror: `problem`, `solution`, and optionally `level`, `type`;
  - MetaMath's MATH_test.jsonl: `instruction` (the problem), `output` (the reference solution),
    other fields ignored except `type` / `level` where present.
  Either may also carry `answer`, used as the gold answer only when the solution has no \\boxed.
* `n_eval`: the first N items in the order of sha256(problem): a fixed, subject-mixed subset that is
  the same whichever source (and file order) serves it; n_eval >= 5000 (or null) is the whole test
  set, the published protocol. An item's id is `<subject>/<first 12 hex of sha256(problem)>`
  (subject from `type`, e.g. "Counting & Probability" -> counting_and_probability; `unknown`
  without one), so the samples table gives per-subject accuracy.

Prompt (MetaMath's eval_math.py): the Alpaca template with the problem as the instruction, ending
"### Response: Let's think step by step."; greedy decoding, cut at MetaMath's stop strings.
Training text uses the same template ending "### Response:" (SORSA's and PiSSA's MetaMathQA
training), and the target is " " + response (the harness's convention, as in the gsm8k task).

Gold answers, predictions and their equivalence: harness/tasks/math_answers.py.

answer_ce (`math/answer_ce/v1`, lower is better): teacher-forced cross-entropy (nats/token) of the
reference solution followed by "\\nThe answer is: <gold>" (MetaMathQA's answer form) after the
training prompt.

Rows: `accuracy` and `answer_ce` under the run's task name, n = items evaluated. No per-subject
rows: the published MATH number is accuracy over all items, and per-dataset rows (the
llm_adapters suites' convention) would file subjects as tasks of their own; the item ids carry the
subject instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.checks import option
from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.data.layout import HubRequest, LocalDataset, LocalFile, json_render, read_json_rows
from harness.data.sources import SourceUnavailable, first_available, hub_loader, read_local
from harness.tasks import from_conf, register
from harness.tasks.base import EvalContext, GeneratedAnswerConfig, Task, TaskData
from harness.tasks.math_answers import ANSWER_MARK, extract_answer, is_equiv, last_boxed
from harness.tasks.metamathqa import SUBSTITUTE_MARK, _local_file, metamathqa_dataset
from harness.tasks.prompting import render

METRIC_VERSION = "v1"
TRAIN_POOLS = ("metamathqa", "gsm8k_train")
ROW_FORMATS = "`problem`/`solution` (the MATH release) or `instruction`/`output` (MetaMath's MATH_test.jsonl)"
CALCULATOR = re.compile(r"<<[^>]*>>")


# --- items -------------------------------------------------------------------------------------

def subject_of(row: Mapping[str, Any], default: str = "unknown") -> str:
    kind = row.get("type")
    if not kind:
        return default
    return re.sub(r"[^a-z0-9]+", "_", str(kind).lower().replace("&", "and")).strip("_") or default


def eval_item(row: Mapping[str, Any], where: str, default_subject: str = "unknown") -> dict:
    """One MATH test row (either accepted format) as an eval item."""
    problem = row.get("problem", row.get("instruction"))
    solution = row.get("solution", row.get("output"))
    if not isinstance(problem, str) or not isinstance(solution, str):
        raise HarnessError(f"{where}: a MATH row has neither {ROW_FORMATS} (keys: {', '.join(sorted(row))})")
    gold = last_boxed(solution)
    if gold is None and row.get("answer") not in (None, ""):
        gold = str(row["answer"])
    if gold is None:
        raise HarnessError(f"{where}: no \\boxed answer in the solution of {problem[:60]!r} and no `answer` field")
    level = row.get("level")
    return {
        "subject": subject_of(row, default_subject), "level": None if level is None else str(level),
        "problem": problem, "target": f"{solution}\n{ANSWER_MARK}{gold}", "answer": gold,
    }


def _problem_hash(item: dict) -> str:
    return hashlib.sha256(item["problem"].encode("utf-8")).hexdigest()


def select(items: list[dict], n: int | None) -> list[dict]:
    """The first n items in sha256(problem) order, each with its id `<subject>/<hash12>`."""
    ranked = sorted(items, key=lambda x: (_problem_hash(x), x["target"]))[: n if n else None]
    seen: Counter[str] = Counter()
    out = []
    for item in ranked:
        base = f"{item['subject']}/{_problem_hash(item)[:12]}"
        seen[base] += 1
        out.append({"id": base if seen[base] == 1 else f"{base}-{seen[base]}", **item})
    return out


def gsm8k_in_metamath_form(item: Mapping[str, str]) -> dict:
    """A GSM8K train item as MetaMathQA's GSM rows read: rationale, "#### N", "The answer is: N"."""
    answer = item["answer"].split("####")[-1].strip()
    return {"problem": item["question"], "target": f"{CALCULATOR.sub('', item['answer']).strip()}\n{ANSWER_MARK}{answer}"}


@dataclass(frozen=True)
class MathConfig(GeneratedAnswerConfig):
    """metamathqa_math's options (conf/task/metamathqa_math.yaml): those of every generated-answer task, and:"""

    train_pool: str | None = option("text", choices=TRAIN_POOLS, nullable=True)
    """metamathqa (the protocol) | gsm8k_train (an offline substitute, filed as `<task>~gsm8k_train`) |
    null (eval items only, e.g. a forgetting probe; a run cannot train on it)."""
    train_limit: int | None = option("int", low=1, nullable=True)
    """The first N training rows (PiSSA/SORSA: 100000); null: all."""
    train_sources: dict[str, Any]
    """Where the MetaMathQA pool comes from: `hub` (path, name, split), `local` (file under data.dir)."""
    score_batch_size: int = option("int", low=1)
    """Sequences per forward pass of the teacher-forced answer cross-entropy (and validation loss)."""
    sources: dict[str, Any]
    """The MATH test set: `hub` (path, split, one config per subject), `local` (file under data.dir)."""


@register
class MetaMathQAMATH(Task):
    name = "metamathqa_math"
    cfg: MathConfig
    config_class = MathConfig

    # --- data ----------------------------------------------------------------------------------

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        pool = self.cfg.train_pool
        source, test = self._math_test(data_cfg)  # eval first: its absence is the usual miss offline
        evaluation = select(test, self.cfg.n_eval)
        name, train_source, train = self._train_pool(data_cfg, pool)
        train = train[: self.cfg.train_limit]
        test_problems = {" ".join(x["problem"].split()) for x in test}
        identity = {
            "task": name, "source": source, "train_pool": pool, "train_source": train_source,
            "n_train_pool": len(train), "n_eval": len(evaluation), "n_test_set": len(test),
            "n_eval_by_subject": dict(sorted(Counter(x["subject"] for x in evaluation).items())),
            "eval_order": "sha256(problem)",
            # training queries identical (up to whitespace) to a MATH test problem: kept, but counted
            "n_train_equal_to_test": sum(" ".join(x["problem"].split()) in test_problems for x in train),
            "train_sha256": hash_object(train, 64), "eval_sha256": hash_object(evaluation, 64),
        }
        return TaskData(name, train, evaluation, identity)

    def local_datasets(self) -> list[LocalDataset]:
        hub, relative = self.cfg.sources["hub"], self.cfg.sources["local"]["file"]
        requests = tuple(HubRequest(hub["path"], config, hub["split"]) for config in hub["configs"])
        test = LocalDataset(relative.split("/")[0], (LocalFile(relative, read_json_rows, requests, json_render(relative)),))
        pool = self.cfg.train_pool
        if pool == "metamathqa":
            return [test, metamathqa_dataset(self.cfg.train_sources)]
        if pool == "gsm8k_train":
            return [test, *from_conf("gsm8k").local_datasets()]
        return [test]

    def _math_test(self, data_cfg: Mapping[str, Any]) -> tuple[str, list[dict]]:
        hub, local = self.cfg.sources["hub"], self.cfg.sources["local"]

        def from_hub() -> list[dict]:
            items = []
            for config in hub["configs"]:
                where = f"hub {hub['path']}/{config}"
                items += [eval_item(r, where, config) for r in hub_loader(hub["path"], config, hub["split"])()]
            return items

        def parse(path: Path) -> list[dict]:
            items = []
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise HarnessError(f"{path}:{number} is not JSON ({exc.msg}); expected JSON Lines with {ROW_FORMATS}") from None
                        items.append(eval_item(row, f"{path}:{number}"))
            if not items:
                raise SourceUnavailable(f"{path} holds no items")
            return items

        def from_local() -> list[dict]:
            return read_local(data_cfg.get("dir"), local["file"], parse)

        return first_available(f"task {self.name} (MATH test set)", {"hub": from_hub, "local": from_local},
                               list(data_cfg["order"]))

    def _train_pool(self, data_cfg: Mapping[str, Any], pool: str | None) -> tuple[str, str, list[dict]]:
        """(the task name results are filed under, source, training items)."""
        if pool is None:
            return self.name, "none", []
        if pool == "gsm8k_train":
            order = [k for k in data_cfg["order"] if k != "package"]  # its package fallback trains on test items
            gsm8k = from_conf("gsm8k").load({**data_cfg, "order": order})
            return (f"{self.name}{SUBSTITUTE_MARK}{pool}", f"{gsm8k.identity['source']} (gsm8k train split)",
                    [gsm8k_in_metamath_form(x) for x in gsm8k.train])
        sources = self.cfg.train_sources
        loaders = {
            "hub": hub_loader(sources["hub"]["path"], sources["hub"].get("name"), sources["hub"]["split"]),
            "local": _local_file(data_cfg.get("dir"), sources["local"]["file"]),
        }
        try:
            kind, rows = first_available(f"task {self.name} (MetaMathQA training pool)", loaders, list(data_cfg["order"]))
        except HarnessError as exc:
            raise type(exc)(f"{exc}; or train on GSM8K train instead with task.train_pool=gsm8k_train "
                            f"(filed as {self.name}{SUBSTITUTE_MARK}gsm8k_train)") from None
        return self.name, kind, [{"problem": r["query"], "target": r["response"]} for r in rows]

    # --- text ----------------------------------------------------------------------------------

    def prompt(self, item: dict) -> str:
        return self.cfg.prompt_template.format(problem=item["problem"])

    def training_pair(self, item: dict) -> tuple[str, str]:
        template = self.cfg.train_prompt_template or self.cfg.prompt_template
        return template.format(problem=item["problem"]), " " + item["target"]

    def loss_batch_size(self) -> int:
        return self.cfg.score_batch_size

    def eval_prompts(self, ctx: EvalContext, data: TaskData) -> list[str]:
        return [render(ctx.tokenizer, self.prompt(x), self.cfg.chat_template) for x in data.eval]

    # --- scoring -------------------------------------------------------------------------------

    def evaluate(self, ctx: EvalContext, data: TaskData) -> list[Metric]:
        c, items = self.cfg, data.eval
        outputs = ctx.generate(self.eval_prompts(ctx, data), c.max_new_tokens, c.stop, c.eval_batch_size,
                               desc=f"eval {data.name}", num_beams=c.num_beams)
        golds = [x["answer"] for x in items]
        predictions = [extract_answer(o) for o in outputs]
        accuracy = [float(is_equiv(p, g)) for p, g in zip(predictions, golds)]
        ce = ctx.cross_entropy([self.training_pair(x) for x in items], c.score_batch_size)
        per_item_ce = [nll / max(n, 1) for nll, n in ce]
        ids = [x["id"] for x in items]
        shown = [f"{p} <- {o}" if p is not None else f"[no '{ANSWER_MARK.strip()}'] <- {o}" for p, o in zip(predictions, outputs)]
        ctx.add_samples(data.name, "accuracy", accuracy, shown, golds, ids)
        ctx.add_samples(data.name, "answer_ce", per_item_ce, item_ids=ids)
        rows = []
        for metric, values, higher in (("accuracy", accuracy, True), ("answer_ce", per_item_ce, False)):
            mean, se = mean_and_stderr(values)
            rows.append(Metric(data.name, metric, mean, se, len(values), higher, f"math/{metric}/{METRIC_VERSION}"))
        return rows
