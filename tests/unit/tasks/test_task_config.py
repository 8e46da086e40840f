"""Typed task options (harness/tasks/base.py `TaskConfig` and each task's subclass): every task's
yaml builds its config field for field, and bad, unknown or missing options are one line each."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
from omegaconf import OmegaConf

from harness import tasks
from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.tasks.base import TaskConfig
from tests.conftest import REPO


def composed(name: str) -> dict:
    return OmegaConf.to_container(preflight._compose([f"task={name}"]).task, resolve=True)


@pytest.mark.parametrize("name", tasks.names())
def test_every_registered_task_types_its_whole_yaml(name):
    options = composed(name)
    task = tasks.build(options)
    assert isinstance(task.cfg, task.config_class) and isinstance(task.cfg, TaskConfig)
    assert task.cfg.as_dict() == options  # nothing dropped, renamed or defaulted in code


@pytest.mark.parametrize("name, change, message", [
    ("gsm8k", {"n_eval": -3}, "task.n_eval=-3 is invalid: it must be an integer >= 1, or null"),
    ("gsm8k", {"stop": "Question:"}, "task.stop='Question:' is invalid: it must be a list of items, each a non-empty text"),
    ("gsm8k", {"score_batch_size": 0}, "task.score_batch_size=0 is invalid: it must be an integer >= 1"),
    ("metamathqa_gsm8k", {"train_pool": "alpaca"}, "task.train_pool='alpaca' is invalid: it must be one of metamathqa, gsm8k_train"),
    ("metamathqa_math", {"train_limit": 0}, "task.train_limit=0 is invalid: it must be an integer >= 1, or null"),
    ("llm_adapters_math", {"tolerance": -1}, "task.tolerance=-1 is invalid: it must be a number >= 0"),
    ("llm_adapters_math", {"scoring": "beam"}, "task.scoring='beam' is invalid: it must be one of generate, loglik"),
    ("llm_adapters_commonsense", {"datasets": ["boolq", "boolq"]},
     "task.datasets=['boolq', 'boolq'] is invalid: it must be a non-empty list of distinct items, each a non-empty text"),
    ("llm_adapters_commonsense", {"datasets": ["boolq", "gsm8k"]}, "task.datasets has unknown ['gsm8k']; valid: boolq"),
    ("llm_adapters_commonsense", {"train_pool": "math_10k"}, "task.train_pool=math_10k is unknown; valid: commonsense_170k"),
    ("glue_sst2", {"num_fewshot": 1}, "task.num_fewshot=1: GLUE follows lm-eval's zero-shot protocol"),
    ("glue_sst2", {"evaluator": "lm_eval", "chat_template": True}, "task.evaluator=lm_eval compares plain-text prompts"),
    ("mmlu", {"num_fewshot": 6}, "task.num_fewshot=6 is out of range; MMLU has 5 dev items per subject"),
    ("mmlu", {"subjects": ["anatomy", "astrology"]}, "task.subjects=['anatomy', 'astrology'] is invalid: unknown MMLU subject astrology"),
    ("mmlu", {"subjects": "anatomy"}, "task.subjects='anatomy' is invalid"),
])
def test_a_bad_task_option_is_one_line_naming_it(name, change, message):
    with pytest.raises(HarnessError) as refused:
        tasks.build({**composed(name), **change})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_an_unknown_or_missing_task_option_names_the_options_and_the_fix():
    options = composed("glue_sst2")
    with pytest.raises(HarnessError, match=r"^task.max_new_tokens is not an option of task glue_sst2; its options are: "
                                           r"batch_size, chat_template, evaluator, n_eval, name, num_fewshot, prompt_version, sources$"):
        tasks.build({**options, "max_new_tokens": 8})
    del options["evaluator"]
    with pytest.raises(HarnessError, match=r"^task.evaluator is missing; conf/task/glue_sst2.yaml sets it"):
        tasks.build(options)


def test_a_tasks_options_are_read_as_typed_attributes_and_cannot_be_changed_in_place():
    task = tasks.build({**composed("gsm8k"), "n_eval": 7})
    assert task.cfg.n_eval == 7 and task.loss_batch_size() == task.cfg.score_batch_size
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.cfg.n_eval = 8  # type: ignore[misc]


def test_the_task_options_page_lists_every_task_and_option():
    spec = importlib.util.spec_from_file_location("registry_tables", REPO / "docs" / "hooks" / "registry_tables.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    tables = hook.task_options_tables().split("\n\n**")
    for name in tasks.names():
        (table,) = [t for t in tables if f"`{name}`" in t.split("\n")[0]]
        assert {row.split("`")[1] for row in table.split("\n") if row.startswith("| `task.")} == {f"task.{o}" for o in composed(name)}
