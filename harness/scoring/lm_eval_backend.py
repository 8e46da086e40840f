"""Evaluate the live model in-process through lm-eval, on exactly the harness's items.

lm-eval's tasks download their data from the hub. Here each of our tasks names the lm-eval task
yaml whose prompt it reproduces (e.g. `mmlu/default/mmlu_anatomy.yaml`, `glue/sst2/default.yaml`);
we write the items the run uses as JSON Lines in the hub's schema and a small yaml that `include`s
lm-eval's own file and only swaps the dataset for `dataset_path: json` over those files. lm-eval
then renders its own prompts, runs its own request batching on the model object we pass to
`HFLM(pretrained=model, tokenizer=tok)`, and we read its per-document responses back in item order.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.scoring.loglik import ChoiceScore, encode_request


@dataclass
class LmEvalTask:
    """One lm-eval task over our items: `base` is the yaml under lm_eval/tasks/ it includes,
    `overrides` replace keys of that yaml (e.g. `generation_kwargs`), `docs` are the evaluated
    items (hub schema, in our order), `fewshot_docs` the few-shot pool where the task has one."""

    name: str
    base: str | None
    docs: list[dict]
    fewshot_docs: list[dict] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class LmEvalRun:
    """Per task: lm-eval's per-document samples in doc order, its own aggregate metrics, and the
    provenance the run records (lm-eval version and a hash of every rendered request)."""

    samples: dict[str, list[dict]]
    results: dict[str, dict]
    identity: dict[str, Any]
    values: dict[str, list[dict[str, float]]]
    """Per task, per document in doc order: each metric's value under every filter (`metric_name`)."""


def metric_name(metric: str, filter_key: str) -> str:
    """A metric's name in our rows: lm-eval's own under its default filter ("none"), else with the
    filter appended (gsm8k: exact_match_strict_match, exact_match_flexible_extract)."""
    return metric if filter_key == "none" else f"{metric}_{re.sub(r'[^0-9A-Za-z]+', '_', filter_key)}"


def values_per_doc(rows: list[dict]) -> list[dict[str, float]]:
    """lm-eval's logged samples (one per document and filter) as one dict of numeric values per document."""
    per_doc: dict[int, dict[str, float]] = defaultdict(dict)
    for row in rows:
        per_doc[row["doc_id"]].update({metric_name(m, row["filter"]): row[m] for m in row["metrics"]
                                       if isinstance(row[m], (bool, int, float))})
    return [per_doc[doc_id] for doc_id in sorted(per_doc)]


def lm_eval_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        raise HarnessError("task.evaluator=lm_eval needs lm-eval; install it with `pip install lm-eval` or set task.evaluator=native") from None


def write_task(root: Path, task: LmEvalTask, num_fewshot: int) -> None:
    import lm_eval

    files = {"test": root / f"{task.name}.test.jsonl"}
    if task.fewshot_docs is not None:
        files["dev"] = root / f"{task.name}.dev.jsonl"
    for split, path in files.items():
        docs = task.docs if split == "test" else task.fewshot_docs
        path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    config: dict[str, Any] = {
        "task": task.name, "tag": [], "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()}},
        "test_split": "test", "validation_split": None, "training_split": None, "num_fewshot": num_fewshot,
        "fewshot_split": "dev" if task.fewshot_docs is not None else None,
        **task.overrides,
    }
    if task.base:
        config = {"include": str(Path(lm_eval.__file__).parent / "tasks" / task.base), **config}
    (root / f"{task.name}.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is valid YAML


def run(model: nn.Module, tok: PreTrainedTokenizerBase, tasks: list[LmEvalTask], batch_size: int,
        device: torch.device, num_fewshot: int = 0, fewshot_seed: int = 1234) -> LmEvalRun:
    """Evaluate `model` on `tasks` with lm-eval's simple_evaluate (no hub, no caching)."""
    version = lm_eval_version()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device=str(device))
    with tempfile.TemporaryDirectory(prefix="harness-lm-eval-") as tmp:
        for task in tasks:
            write_task(Path(tmp), task, num_fewshot)
        manager = TaskManager(include_path=tmp, include_defaults=False)
        out = simple_evaluate(
            model=lm, tasks=[t.name for t in tasks], task_manager=manager, num_fewshot=num_fewshot,
            log_samples=True, bootstrap_iters=0, fewshot_random_seed=fewshot_seed, verbosity="WARNING",
        )
    values = {name: values_per_doc(rows) for name, rows in out["samples"].items()}
    # lm-eval logs each document once per filter (gsm8k: strict-match and flexible-extract); the
    # model's responses are the same in all, so keep one row per document, in doc order.
    samples = {name: sorted({s["doc_id"]: s for s in reversed(rows)}.values(), key=lambda s: s["doc_id"])
               for name, rows in out["samples"].items()}
    hashes = {
        name: hash_object([[s["doc_hash"], s["prompt_hash"], s["target_hash"]] for s in rows], 64)
        for name, rows in samples.items()
    }
    identity = {"evaluator": "lm_eval", "lm_eval_version": version, "num_fewshot": num_fewshot,
                "fewshot_seed": fewshot_seed, "task_hashes": hashes}
    return LmEvalRun(samples, out["results"], identity, values)


def choice_scores(tok: PreTrainedTokenizerBase, rows: list[dict]) -> list[list[ChoiceScore]]:
    """Per document: lm-eval's (log-likelihood, is_greedy) of each choice as ChoiceScores (the
    token count re-derived with lm-eval's own encoding rule)."""
    out = []
    for row in rows:
        scores = []
        for (context, continuation), resp in zip(row["arguments"], row["resps"]):
            logprob, greedy = resp[0]
            scores.append(ChoiceScore(float(logprob), bool(greedy), len(encode_request(tok, context, continuation)[1])))
        out.append(scores)
    return out


def greedy_generations(model: nn.Module, tok: PreTrainedTokenizerBase, task: LmEvalTask, stop: list[str],
                       max_new_tokens: int, batch_size: int, device: torch.device) -> tuple[list[str], dict]:
    """lm-eval's zero-shot greedy `generate_until` on `task` with our stop strings and token limit:
    per document its raw output (before lm-eval's answer-extraction filters), and the run identity."""
    gen = {"until": list(stop), "do_sample": False, "temperature": 0.0, "max_gen_toks": max_new_tokens}
    task = LmEvalTask(task.name, task.base, task.docs, task.fewshot_docs, {**task.overrides, "generation_kwargs": gen})
    result = run(model, tok, [task], batch_size, device, num_fewshot=0)
    return [row["resps"][0][0] for row in result.samples[task.name]], result.identity
