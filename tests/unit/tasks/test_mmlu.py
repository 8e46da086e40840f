"""MMLU on the real release files: loading, prompt format, metrics, and a CLI run into parquet."""

from __future__ import annotations

import csv

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.scoring.loglik import ChoiceScore
from harness.store.result_store import ResultStore
from harness.tasks.base import EvalContext
from harness.tasks.mmlu import MMLU, SUBJECTS
from tests.conftest import run_cli

TASK_CFG = yaml.safe_load((CONF_DIR / "task" / "mmlu.yaml").read_text())


def mmlu(**overrides) -> MMLU:
    return MMLU.of({**TASK_CFG, **overrides})


def records(data_dir, split: str) -> int:
    """CSV records over every subject's file of a split."""
    total = 0
    for path in (data_dir / "mmlu" / split).glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            total += sum(1 for _ in csv.reader(f))
    return total


def check_local_source(data_dir, n_test: int, n_val: int) -> None:
    data = mmlu().load({"dir": str(data_dir), "order": ["local"]})
    assert data.name == "mmlu" and len(data.eval) == n_test  # every test item
    assert {x["subject"] for x in data.eval} == set(SUBJECTS)
    assert data.identity["train_split"].startswith("val")
    # Val rows that repeat a test item verbatim are not trained on (tests/data keeps one such pair).
    assert len(data.train) + data.identity["train_dropped_test_duplicates"] == n_val
    assert data.identity["train_dropped_test_duplicates"] > 0
    key = lambda x: (x["question"].strip(), tuple(x["choices"]))
    assert not {key(x) for x in data.train} & {key(x) for x in data.eval}
    assert all(len(x["choices"]) == 4 and x["answer"] in range(4) for x in data.eval)


def test_local_source_reads_every_subject_and_trains_on_val_only(test_data):
    check_local_source(test_data, records(test_data, "test"), records(test_data, "val"))


@pytest.mark.slow
def test_local_source_reads_the_full_test_set(full_data):
    check_local_source(full_data, 14042, 1529)  # MANIFEST: test 14,042 rows, val 1,529


def test_five_shot_prompt_uses_the_first_dev_items_of_the_subject(test_data):
    task = mmlu(subjects=["anatomy"], n_eval=2, num_fewshot=5)
    data = task.load({"dir": str(test_data), "order": ["local"]})
    assert data.name == "mmlu_5shot" and data.identity["num_fewshot"] == 5
    prompt = task.context(data.eval[1])
    dev = task.shots["anatomy"]
    assert prompt.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert prompt.count("\nAnswer:") == 6 and prompt.endswith("\nAnswer:")
    positions = [prompt.index(x["question"].strip()) for x in dev] + [prompt.index(data.eval[1]["question"].strip())]
    assert positions == sorted(positions)  # shots in dev order, the question last
    assert f"\nAnswer: {'ABCD'[dev[0]['answer']]}\n\n" in prompt
    zero_shot, target = task.training_pair(data.eval[1])
    assert zero_shot.count("\nAnswer:") == 1 and target == " " + "ABCD"[data.eval[1]["answer"]]


@pytest.mark.parametrize("overrides,needle", [
    ({"num_fewshot": 6}, "task.num_fewshot=6"),
    ({"subjects": ["astrology"]}, "astrology"),
    ({"evaluator": "vllm"}, "task.evaluator='vllm'"),
    ({"evaluator": "lm_eval", "chat_template": True}, "task.chat_template=false"),
])
def test_bad_settings_are_one_line_errors(test_data, overrides, needle):
    with pytest.raises(HarnessError) as err:
        mmlu(**overrides).load({"dir": str(test_data), "order": ["local"]})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_weighted_macro_and_subject_rows(test_data):
    """4 algebra items all right, 2 anatomy items all wrong: weighted 4/6, macro 1/2."""
    task = mmlu(subjects=["abstract_algebra", "anatomy"], n_eval=4)
    data = task.load({"dir": str(test_data), "order": ["local"]})
    data.eval = data.eval[:6]
    scores = []
    for x in data.eval:
        right = x["subject"] == "abstract_algebra"
        pick = x["answer"] if right else (x["answer"] + 1) % 4
        scores.append([ChoiceScore(0.0 if j == pick else -1.0, j == pick, 1) for j in range(4)])
    ctx = EvalContext(None, None, None, 0)
    rows = {m.metric: m for m in task.metrics(ctx, data, scores)}
    assert rows["acc"].value == pytest.approx(4 / 6) and rows["acc"].n == 6
    assert rows["acc_macro"].value == pytest.approx(0.5)
    assert rows["acc/abstract_algebra"].value == 1.0 and rows["acc/anatomy"].value == 0.0
    assert rows["acc_stem"].value == pytest.approx(4 / 6)  # both subjects are STEM in lm-eval's grouping
    assert {m.version for m in rows.values()} == {"mmlu/acc/v1", "mmlu/acc_macro/v1", "mmlu/acc_category/v1", "mmlu/acc_subject/v1"}
    assert [s["item_id"] for s in ctx.samples][-2:] == ["anatomy/0", "anatomy/1"]


def test_cli_run_writes_mmlu_rows(tmp_path, test_data):
    """Every subject, one test item each, on tiny-random-llama through the real CLI."""
    proc = run_cli(["model=tiny-random-llama", "task=mmlu", "budget=smoke", "task.n_eval=1", "forgetting.probe=none",
                    "data.order=[local]"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, bad = ResultStore(tmp_path).read()
    assert bad == [] and list(runs["task"]) == ["mmlu"] and list(runs["status"]) == ["finished"]
    final = metrics[metrics["step"].isna() & (metrics["task"] == "mmlu")].set_index("metric")
    assert final.loc["acc", "n"] == 57 and 0.0 <= final.loc["acc", "value"] <= 1.0
    assert {f"acc/{s}" for s in SUBJECTS} <= set(final.index)
    assert {"acc_macro", "acc_stem", "acc_humanities", "acc_social_sciences", "acc_other"} <= set(final.index)
    samples = ResultStore(tmp_path).read_samples()
    per_item = samples[(samples["task"] == "mmlu") & (samples["metric"] == "acc")]
    assert len(per_item) == 57 and per_item["value"].mean() == pytest.approx(final.loc["acc", "value"])
