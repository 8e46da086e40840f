"""GSM8K answer extraction on real items, and data-source resolution."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.errors import HarnessError
from harness.experiment import CONF_DIR
from harness.tasks.gsm8k import (
    GSM8K,
    extract_flexible,
    extract_strict,
    reference_answer,
)

TASK_CFG = yaml.safe_load((CONF_DIR / "task" / "gsm8k.yaml").read_text())


def test_reference_solutions_extract_to_their_answer(shared_data):
    items = [json.loads(l) for l in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:200]]
    for item in items:
        ref = reference_answer(item["answer"])
        assert extract_strict(item["answer"]) == ref
        assert extract_flexible(item["answer"]) == ref


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


def test_local_source_uses_official_splits(shared_data):
    data = GSM8K(TASK_CFG).load({"dir": str(shared_data), "order": ["local"]})
    assert data.name == "gsm8k"
    assert len(data.train) == 7473 and len(data.eval) == TASK_CFG["n_eval"]
    assert data.identity["source"] == "local" and len(data.identity["eval_sha256"]) == 64


def test_package_fallback_is_disjoint_and_renamed():
    data = GSM8K(TASK_CFG).load({"dir": None, "order": ["package"]})
    assert data.name == "gsm8k_testslice"
    assert len(data.train) == 1319 - TASK_CFG["sources"]["package"]["eval_pool"]
    assert not {x["question"] for x in data.train} & {x["question"] for x in data.eval}


def test_same_items_same_identity_whatever_the_source(shared_data):
    """The packaged test set equals the official one item by item, so the eval hash agrees."""
    local = GSM8K(TASK_CFG).load({"dir": str(shared_data), "order": ["local"]})
    packaged = GSM8K(TASK_CFG).load({"dir": None, "order": ["package"]})
    assert local.identity["eval_sha256"] == packaged.identity["eval_sha256"]


def test_missing_data_names_every_source_tried(tmp_path):
    with pytest.raises(HarnessError) as err:
        GSM8K(TASK_CFG).load({"dir": str(tmp_path), "order": ["local"]})
    message = str(err.value)
    assert "no data for task gsm8k" in message and str(tmp_path / "gsm8k" / "train.jsonl") in message
    assert "\n" not in message
