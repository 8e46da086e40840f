"""GSM8K answer extraction on real items, and data-source resolution."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.tasks.gsm8k import (
    GSM8K,
    answer_is_correct,
    extract_answer_is,
    extract_flexible,
    extract_strict,
    reference_answer,
)

TASK_CFG = yaml.safe_load((CONF_DIR / "task" / "gsm8k.yaml").read_text())


def test_reference_solutions_extract_to_their_answer(test_data):
    items = [json.loads(l) for l in (test_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:200]]
    for item in items:
        ref = reference_answer(item["answer"])
        assert extract_strict(item["answer"]) == ref
        assert extract_flexible(item["answer"]) == ref
        assert answer_is_correct(item["answer"], item["answer"])  # every reference reads as itself


@pytest.mark.parametrize("output,strict,flexible", [
    ("She pays 3 * 4 = 12 dollars.\n#### 12", "12", "12"),
    ("The answer is $1,234.", None, "1234"),
    ("#### -7.", "-7", "-7"),
    ("no number here", None, None),
    ("First 5 then 6 so 11\n#### 10 eggs", "10", "10"),
])
def test_extraction(output, strict, flexible):
    assert extract_strict(output) == strict
    assert extract_flexible(output) == flexible


@pytest.mark.parametrize("output,answer", [
    ("the dot product is $4^2 = \\boxed{16}$.The answer is: 16", "16"),  # PEFT's parse_answer docstring
    ("The answer is 18.\n\nQuestion: next one? The answer is 3", "3"),  # the mark's last occurrence
    ("Sum it up. The final answer is: $1,234.", "1,234"),  # "The answer is" absent: the next mark; $ and . dropped
    ("He keeps 50% of it.\n#### 50%", "50"),
    ("no mark at all: 42", None),
])
def test_answer_is_reads_the_text_after_the_first_mark_found(output, answer):
    assert extract_answer_is(output) == answer


def test_answer_is_compares_numbers_as_numbers_and_the_rest_as_text():
    assert answer_is_correct("The answer is: 16.", "so #### 16")
    assert answer_is_correct("The answer is 20/35", "#### 0.5714285714285714")  # PEFT: fractions as decimals
    assert answer_is_correct("The answer is: 7.0", "#### 7")
    assert not answer_is_correct("The answer is: 1,000", "#### 1000")  # PEFT's rule reads 1,000 as text
    assert not answer_is_correct("The answer is: 15", "#### 16")
    assert not answer_is_correct("16", "#### 16")  # no mark, no answer
    assert answer_is_correct("The answer is: x+1", "The answer is: x+1") and not answer_is_correct("The answer is: x", "#### 3")


def train_lines(data_dir) -> int:
    return len((data_dir / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines())


def check_local_splits(data_dir, n_train: int) -> None:
    data = GSM8K.of(TASK_CFG).load({"dir": str(data_dir), "order": ["local"]})
    assert data.name == "gsm8k"
    assert len(data.train) == n_train and len(data.eval) == TASK_CFG["n_eval"]
    assert data.identity["source"] == "local" and len(data.identity["eval_sha256"]) == 64


def test_local_source_trains_on_train_and_evaluates_test(test_data):
    check_local_splits(test_data, train_lines(test_data))


@pytest.mark.slow
def test_local_source_uses_official_splits(full_data):
    check_local_splits(full_data, 7473)


def test_package_fallback_is_disjoint_and_renamed():
    data = GSM8K.of(TASK_CFG).load({"dir": None, "order": ["package"]})
    assert data.name == "gsm8k_testslice"
    assert len(data.train) == 1319 - TASK_CFG["sources"]["package"]["eval_pool"]
    assert not {x["question"] for x in data.train} & {x["question"] for x in data.eval}


def test_same_items_same_identity_whatever_the_source(test_data):
    """The packaged test set equals the official one item by item, so the eval hash agrees."""
    local = GSM8K.of(TASK_CFG).load({"dir": str(test_data), "order": ["local"]})
    packaged = GSM8K.of(TASK_CFG).load({"dir": None, "order": ["package"]})
    assert local.identity["eval_sha256"] == packaged.identity["eval_sha256"]


def test_missing_data_names_every_source_tried(tmp_path):
    with pytest.raises(HarnessError) as err:
        GSM8K.of(TASK_CFG).load({"dir": str(tmp_path), "order": ["local"]})
    message = str(err.value)
    assert "no data for task gsm8k" in message and str(tmp_path / "gsm8k" / "train.jsonl") in message
    assert "\n" not in message


def _local(test_data, **overrides):
    task = GSM8K.of({**TASK_CFG, **overrides})
    return task, task.load({"dir": str(test_data), "order": ["local"]})


class _Ctx:  # eval_prompts reads only the tokenizer, and only when the chat template is on
    tokenizer = None


def test_zero_shot_prompts_are_the_template_unchanged(test_data):
    assert TASK_CFG["n_shots"] == 0 and TASK_CFG["chat_template"] is False
    task, data = _local(test_data, n_eval=5)
    assert task.shots(data) == []
    assert task.eval_prompts(_Ctx(), data) == [TASK_CFG["prompt_template"].format(question=x["question"]) for x in data.eval]


def test_k_shot_draws_train_items_by_seed_and_never_eval_items(test_data):
    task, data = _local(test_data, n_eval=20, n_shots=3, shot_seed=0)
    shots = task.shots(data)
    assert len(shots) == 3 and all(s in data.train for s in shots)
    assert not {s["question"] for s in shots} & {x["question"] for x in data.eval}
    assert shots == task.shots(data)  # the same seed, the same shots
    other, _ = _local(test_data, n_eval=20, n_shots=3, shot_seed=1)
    assert other.shots(data) != shots
    prompt = task.eval_prompts(_Ctx(), data)[0]
    # every shot is a solved example in the prompt's own format, then the eval question
    assert prompt.count("Question: ") == 4 and prompt.endswith(task.prompt(data.eval[0]))
    assert all(f"{task.prompt(s)} {s['answer']}\n\n" in prompt for s in shots)


def test_k_shot_beyond_the_train_split_is_a_one_line_error(test_data):
    task, data = _local(test_data, n_eval=2, n_shots=10_000)
    with pytest.raises(HarnessError, match=rf"task.n_shots=10000 is impossible: the train split has {train_lines(test_data)} items"):
        task.shots(data)


def test_chat_template_wraps_the_prompt_as_a_user_turn(test_data, tiny_model):
    task, data = _local(test_data, n_eval=1, chat_template=True)
    ctx = type("Ctx", (), {"tokenizer": tiny_model().tokenizer})()
    prompt = task.eval_prompts(ctx, data)[0]
    assert task.prompt(data.eval[0]) in prompt and prompt != task.prompt(data.eval[0])
    assert prompt.rstrip().endswith("assistant")  # SmolLM2's template opens the assistant turn
