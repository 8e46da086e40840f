"""Bad inputs end in one line, exit status 2 and no rows: options of the wrong type or out of range
(harness/config/run_config.py, through the real CLI and, for the longer table, the preflight in-process),
a results_dir that cannot be created, damaged data files (every local loader). And the report of
runs that share configuration and seed but not their data keeps them apart instead of crashing."""

from __future__ import annotations

import dataclasses
import json
import re
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness import tasks
from harness.budget.spec import Budget
from harness.cli import preflight
from harness.config.checks import first_problem
from harness.config.run_config import RULES
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.data.general_text import general_text
from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli

TINY = ["model=tiny-random-llama", "budget=smoke", "task.n_eval=2", "task.max_new_tokens=4",
        "forgetting.probes=[kl_drift]", "forgetting.target_gain=false", "eval.latency_tokens=0"]
GARBAGE = random.Random(0).randbytes(4096)  # not UTF-8 (0x80-0xff bytes in bad places)


def assert_refused(proc: subprocess.CompletedProcess, names: str, results: Path) -> str:
    """Exit 2, stderr one `error:` line naming `names`, no result rows; returns the line."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(results).read()
    assert runs.empty and metrics.empty
    return lines[0]


# ---- options of the wrong type or out of range, through the CLI -----------------------------------

@pytest.mark.parametrize("override, shown, allowed", [
    ("seed=abc", "'abc'", "an integer >= 0"),                    # a traceback in execute before
    ("task.n_eval=-3", "-3", "an integer >= 1, or null"),        # silently dropped the last 3 items before
    ("train.batch_size=0", "0", "an integer >= 1"),
    ("train.lr=fast", "'fast'", "a number > 0, or null"),
    ("budget.max_steps=2.5", "2.5", "an integer, or null"),
    ("data.order=hub", "'hub'", "a non-empty list of distinct items, each one of hub, local, package"),
    ("eval.log_samples=maybe", "'maybe'", "true or false"),
    ("device=gpu", "'gpu'", "auto, cpu, mps, cuda or cuda:N"),
])
def test_bad_option_is_one_line_through_the_cli(tmp_path, override, shown, allowed):
    option = override.split("=", 1)[0]
    line = assert_refused(run_cli([*TINY, override], tmp_path), f"{option}=", tmp_path)
    assert line == f"error: {option}={shown} is invalid: it must be {allowed}"


def test_an_option_a_group_does_not_have_is_one_line_through_the_cli(tmp_path):
    line = assert_refused(run_cli([*TINY, "+train.bach_size=8"], tmp_path), "train.bach_size", tmp_path)
    assert line.startswith("error: train.bach_size is not an option of train; its options are: batch_size, ")


def test_results_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    results = tmp_path / "a_file" / "results"
    line = assert_refused(run_cli(TINY, results), "results_dir=", results)
    assert f"{tmp_path / 'a_file'} is a file, not a folder" in line


# ---- the longer table, in-process: the same preflight, no subprocess -------------------------------

@pytest.mark.parametrize("overrides, option", [
    (["seed=-1"], "seed"),
    (["seed=1.5"], "seed"),
    (["force=yes"], "force"),
    (["data.order=[]"], "data.order"),
    (["data.order=[local,local]"], "data.order"),
    (["data.order=[local,disk]"], "data.order"),
    (["train.lr=0"], "train.lr"),
    (["train.grad_accum=two"], "train.grad_accum"),
    (["train.max_seq_len=0"], "train.max_seq_len"),
    (["train.warmup_ratio=1.5"], "train.warmup_ratio"),
    (["train.warmup_ratio=nan"], "train.warmup_ratio"),
    (["train.grad_clip=-1"], "train.grad_clip"),
    (["train.precision=fp8"], "train.precision"),
    (["train.data_seed=x"], "train.data_seed"),
    (["train.lr_sweep=[1,-2]"], "train.lr_sweep"),
    (["train.lr_sweep=3"], "train.lr_sweep"),
    (["train.eval_every=-1"], "train.eval_every"),
    (["train.val_items=0"], "train.val_items"),
    (["train.steps_to_target_fraction=0"], "train.steps_to_target_fraction"),
    (["eval.merge_adapters=1"], "eval.merge_adapters"),
    (["eval.latency_tokens=-16"], "eval.latency_tokens"),
    (["task.n_eval=0"], "task.n_eval"),
    (["task.n_eval=ten"], "task.n_eval"),
    (["task.n_shots=-1"], "task.n_shots"),
    (["task.max_new_tokens=0"], "task.max_new_tokens"),
    (["task.eval_batch_size=0"], "task.eval_batch_size"),
    (["task.chat_template=no"], "task.chat_template"),
    (["task=mmlu", "task.num_fewshot=-1"], "task.num_fewshot"),
    (["task=llm_adapters_math", "task.train_limit=0"], "task.train_limit"),
    (["budget.max_tokens=lots"], "budget.max_tokens"),
    (["budget=time10min", "budget.max_time_s=soon"], "budget.max_time_s"),
    (["budget=params_1pct", "budget.target_params_pct=one"], "budget.target_params_pct"),
    (["forgetting.general_text.n_chunks=0"], "forgetting.general_text.n_chunks"),
    (["forgetting.kl_drift.new_tokens=0"], "forgetting.kl_drift.new_tokens"),
    (["wandb.enabled=on"], "wandb.enabled"),
    (["wandb.mode=loud"], "wandb.mode"),
    (["sweep_name=''"], "sweep_name"),
    (["model.dtype=bf17"], "model.dtype"),
    (["train.gradient_checkpointing=1"], "train.gradient_checkpointing"),
    (["train.packing=yes"], "train.packing"),
    (["train.group_by_length=2"], "train.group_by_length"),
    (["train.checkpoint_every=-1"], "train.checkpoint_every"),
    (["train.checkpoint_minutes=-5"], "train.checkpoint_minutes"),
])
def test_bad_option_is_refused_by_the_preflight(overrides, option):
    with pytest.raises(HarnessError) as refused:
        preflight.check(overrides)
    message = str(refused.value)
    assert message.startswith(f"{option}=") and " is invalid: it must be " in message and "\n" not in message


@pytest.mark.parametrize("overrides, line", [
    (["method=mezo", "train.gradient_checkpointing=true"],
     "train.gradient_checkpointing=true does not apply to method mezo: it computes no gradients"),
    (["method=prefix_tuning", "train.gradient_checkpointing=true"],
     "train.gradient_checkpointing=true does not apply to method prefix_tuning: its prefixes enter each layer"),
    (["model.dtype=bf16", "train.precision=fp16"], "train.precision=fp16 contradicts model.dtype=bf16"),
])
def test_impossible_precision_and_memory_combinations_are_refused(overrides, line):
    with pytest.raises(HarnessError) as refused:
        preflight.check(["model=tiny-random-llama", "budget=smoke", *overrides])
    assert str(refused.value).startswith(line) and "\n" not in str(refused.value)


def test_budget_ranges_stay_with_the_budget():
    with pytest.raises(HarnessError, match=r"^budget.max_steps=-3 is impossible; it must be >= 1$"):
        preflight.check(["budget.max_steps=-3"])


def test_every_rule_names_an_option_that_exists_and_every_shipped_config_passes():
    """A misspelt option in the table would never be checked: each one must occur in the default
    config or in some task or budget file, or be a field of Budget (the budget rules are exactly its
    numbers); and no shipped task or budget may break a rule."""
    budget_numbers = {f"budget.{f.name}" for f in dataclasses.fields(Budget)} - {"budget.name", "budget.epoch_steps"}
    assert budget_numbers == {r.option for r in RULES if r.option.startswith("budget.")}
    absent, found = object(), set(budget_numbers)
    choices = [[], *([f"{group}={p.stem}"] for group in ("task", "budget") for p in (CONF_DIR / group).glob("*.yaml"))]
    for overrides in choices:
        cfg = preflight._compose(overrides)
        OmegaConf.resolve(cfg)
        assert first_problem(OmegaConf.to_container(cfg), RULES) is None, overrides
        found |= {r.option for r in RULES if OmegaConf.select(cfg, r.option, default=absent) is not absent}
    assert found == {r.option for r in RULES}


# ---- damaged data files --------------------------------------------------------------------------

def test_binary_garbage_data_file_is_one_line_through_the_cli(tmp_path, test_data):
    data = tmp_path / "data"
    (data / "gsm8k").mkdir(parents=True)
    (data / "gsm8k" / "train.jsonl").write_text((test_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8"))
    (data / "gsm8k" / "test.jsonl").write_bytes(GARBAGE)  # a UnicodeDecodeError traceback before
    line = assert_refused(run_cli([*TINY, f"data.dir={data}"], tmp_path / "results"),
                          str(data / "gsm8k" / "test.jsonl"), tmp_path / "results")
    assert "is damaged and cannot be read (UnicodeDecodeError" in line
    assert f"python -m harness.data fetch --to {data}" in line


def _copy_head(source: Path, target: Path, lines: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, encoding="utf-8") as f:
        target.write_text("".join(f.readline() for _ in range(lines)), encoding="utf-8")


@pytest.mark.parametrize("task, overrides, damaged, content", [
    pytest.param("gsm8k", [], "gsm8k/train.jsonl", GARBAGE, id="gsm8k-binary"),
    pytest.param("gsm8k", [], "gsm8k/train.jsonl", b'{"question": "cut off', id="gsm8k-cut-off-json"),
    pytest.param("glue_rte", [], "glue/RTE/dev.tsv", GARBAGE, id="glue-binary"),
    pytest.param("mmlu", ["task.subjects=[anatomy]"], "mmlu/test/anatomy_test.csv", GARBAGE, id="mmlu-binary"),
    pytest.param("mmlu", ["task.subjects=[anatomy]"], "mmlu/test/anatomy_test.csv", b"a question,A,B\n", id="mmlu-short-row"),
    pytest.param("llm_adapters_math", ["task.datasets=[gsm8k]", "task.train_pool=null"],
                 "llm_adapters/dataset/gsm8k/test.json", GARBAGE, id="llm_adapters-binary"),
    pytest.param("metamathqa_math", ["task.train_pool=null"], "math/test.jsonl", GARBAGE, id="math-binary"),
    pytest.param("metamathqa_gsm8k", [], "metamathqa/MetaMathQA-395K.json", GARBAGE, id="metamathqa-binary"),
])
def test_damaged_file_of_every_local_loader_is_named(tmp_path, test_data, task, overrides, damaged, content):
    for split in ("train", "test"):  # metamathqa_gsm8k evaluates on GSM8K: good copies of those
        _copy_head(test_data / "gsm8k" / f"{split}.jsonl", tmp_path / "gsm8k" / f"{split}.jsonl", 20)
    (tmp_path / damaged).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / damaged).write_bytes(content)
    cfg = preflight._compose([f"task={task}", *overrides])
    with pytest.raises(HarnessError) as refused:
        tasks.build(OmegaConf.to_container(cfg.task, resolve=True)).load({"dir": str(tmp_path), "order": ["local"]})
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / damaged} is damaged and cannot be read (") and "\n" not in message
    assert "python -m harness.data fetch" in message


def test_damaged_general_text_is_named(tmp_path):
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "test.txt").write_bytes(GARBAGE)
    cfg = OmegaConf.to_container(preflight._compose([]).forgetting.general_text, resolve=True)
    with pytest.raises(HarnessError, match=r"wikitext2/test.txt is damaged and cannot be read \(UnicodeDecodeError"):
        general_text(cfg["hub"], cfg["local_file"], {"dir": str(tmp_path), "order": ["local"]})


# ---- the report of runs that share configuration and seed but not their data ---------------------

def test_report_keeps_runs_on_different_data_apart(tmp_path, test_data):
    """The same run (config and seed) done twice, the second time after its data changed: two run ids.
    The report must not average them as seeds (nor crash, as pandas' pivot did): each is its own
    variant, labelled by the data that differs."""
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, first in ((before, 0), (after, 2)):  # the eval set moved by two items
        _copy_head(test_data / "gsm8k" / "train.jsonl", folder / "gsm8k" / "train.jsonl", 40)
        lines = (test_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / "gsm8k" / "test.jsonl").write_text("".join(lines[first:first + 10]), encoding="utf-8")
    results = tmp_path / "results"
    proc = run_cli(["hydra.mode=MULTIRUN", *TINY, "method=lora", f"data.dir={before},{after}", "data.order=[local]"], results)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, _, _ = ResultStore(results).read()
    assert len(runs) == 2 and runs["seed"].nunique() == 1 and runs["run_id"].nunique() == 2
    table = proc.stdout[proc.stdout.index("=== sweep"):]  # the end-of-sweep table keeps them apart too
    assert len(re.findall(r"^ *lora .*data\.eval_sha256=\w+ +1 ", table, re.M)) == 2, table

    proc = subprocess.run([sys.executable, "-m", "harness.report", str(results)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    board = pd.read_csv(results / "report" / "gsm8k_leaderboard.csv")
    eval_hashes = {json.loads(d)["eval_sha256"][:8] for d in runs["data_json"]}
    assert sorted(board["variant"]) == sorted(f"data.eval_sha256={h}" for h in eval_hashes)
    assert (board["method"] == "lora").all() and (board["n_seeds"] == 1).all()
    assert "data.eval_sha256=" in proc.stdout  # the printed leaderboard shows what differs
