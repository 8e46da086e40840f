"""Protocol configs (conf/leaderboard/*.yaml): each composes into a multirun of hub-model arms
that train on the published data, each runs the methods of its reference table, and
`+leaderboard/smoke=tiny` swaps model, budget, eval items and training pool, and nothing else,
so a real CLI run of every protocol finishes on a CPU."""

from __future__ import annotations

import functools
import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

import methods
from harness import tasks
from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.report.reference import available, base_task, load_reference
from tests.conftest import run_cli

PROTOCOLS = sorted(p.stem for p in (CONF_DIR / "leaderboard").glob("*.yaml"))
SMOKE = "+leaderboard/smoke=tiny"
CPU_SCALE = "pissa_vs_lora_cpu"
SMOKE_ONLY = ("model", "budget", "train", "task", "forgetting", "sweep_name")  # what the smoke config may change


@functools.lru_cache(maxsize=None)  # composing is the slow part; every test only reads the configs
def _jobs(*overrides: str) -> list:
    configs = []
    for job in preflight.expand_jobs(list(overrides)):
        cfg = preflight._compose(job)
        OmegaConf.resolve(cfg)
        configs.append(cfg)
    return configs


@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_composes_into_arms_on_the_published_set_up(name):
    jobs = _jobs(f"+leaderboard={name}")
    assert len(jobs) >= 2 and len({j.method.name for j in jobs}) >= 2
    for cfg in jobs:
        assert cfg.sweep_name == name
        methods.build(OmegaConf.to_container(cfg.method, resolve=True))  # every arm's options are valid
        assert tasks.build(OmegaConf.to_container(cfg.task, resolve=True)).name == cfg.task.name
        if name != CPU_SCALE:  # the one protocol that is not the published set-up (SmolLM2, GSM8K train)
            assert cfg.task.train_pool != cfg.offline_train_pool, "a protocol trains on the published data"
            assert cfg.model.source == "hub" and cfg.model.hub_id


@pytest.mark.parametrize("name", available())
def test_each_reference_has_a_protocol_running_its_methods(name):
    arms = {cfg.method.name for cfg in _jobs(f"+leaderboard={name}")}
    reference = load_reference(name)
    if "claim" in reference.columns:  # a published claim compares two methods along the training curves
        assert set(reference["method"]) | set(reference["baseline"]) == arms
        return
    assert set(reference["method"]) == arms
    task = _jobs(f"+leaderboard={name}")[0].task.name
    assert task in {base_task(t.split("/")[0]) for t in reference["task"]}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_smoke_override_changes_only_model_budget_data_and_eval_size(name):
    published, smoke = _jobs(f"+leaderboard={name}"), _jobs(f"+leaderboard={name}", SMOKE)
    arms = {cfg.method.name: cfg for cfg in published}
    assert {cfg.method.name for cfg in smoke} == set(arms)
    for cfg in smoke:
        assert cfg.model.source == "random_init" and cfg.budget.max_steps <= 3 and cfg.task.n_eval <= 4
        assert cfg.task.train_pool == cfg.offline_train_pool
        full = arms[cfg.method.name]
        assert cfg.method == full.method, "the arms run with their published options"
        changed = {k for k in full if k not in SMOKE_ONLY and full[k] != cfg.get(k)}
        assert changed <= {"seed", "hydra"}


# --- the MetaMathQA -> GSM8K task the MetaMathQA protocols train on ----------------------------------

def _task(**overrides):
    cfg = preflight._compose(["task=metamathqa_gsm8k", *(f"task.{k}={v}" for k, v in overrides.items())])
    return tasks.build(OmegaConf.to_container(cfg.task, resolve=True))


def test_metamathqa_trains_on_query_response_and_evaluates_gsm8k_test(tmp_path, test_data):
    (tmp_path / "gsm8k").symlink_to(test_data / "gsm8k")
    (tmp_path / "metamathqa").mkdir()
    rows = [{"query": f"q{i}", "response": f"r{i} The answer is: {i}", "type": "GSM_AnsAug"} for i in range(7)]
    (tmp_path / "metamathqa" / "MetaMathQA-395K.json").write_text(json.dumps(rows))
    data = _task(train_limit=5, n_eval=3).load({"dir": str(tmp_path), "order": ["local"]})
    gsm8k = tasks.build(OmegaConf.to_container(preflight._compose(["task=gsm8k", "task.n_eval=3"]).task, resolve=True))
    assert data.name == "metamathqa_gsm8k" and data.identity["train_pool"] == "metamathqa"
    assert data.train == [{"question": r["query"], "answer": r["response"]} for r in rows[:5]]
    assert data.eval == gsm8k.load({"dir": str(test_data), "order": ["local"]}).eval


def test_without_metamathqa_the_error_names_the_file_and_the_substitute(test_data):
    with pytest.raises(HarnessError) as err:
        _task().load({"dir": str(test_data), "order": ["local"]})
    assert "metamathqa/MetaMathQA-395K.json does not exist" in str(err.value)
    assert "task.train_pool=gsm8k_train" in str(err.value) and "\n" not in str(err.value)
    data = _task(train_pool="gsm8k_train").load({"dir": str(test_data), "order": ["local"]})
    gsm8k_train = (test_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert data.name == "metamathqa_gsm8k~gsm8k_train" and len(data.train) == len(gsm8k_train)  # GSM8K's train split


# One real CLI run per protocol. Offline, HellaSwag's test set is missing: the commonsense protocol
# says so in its config and evaluates the datasets that are here.
EXTRA = {"llm_adapters_commonsense": ["task.datasets=[boolq,arc_e]"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_runs_end_to_end_with_the_smoke_override(name, tmp_path, test_data):
    parallel = ["+launcher=local_parallel"] if len(_jobs(f"+leaderboard={name}", SMOKE)) >= 4 else []  # worth two workers' start-up
    proc = run_cli([f"+leaderboard={name}", SMOKE, *EXTRA.get(name, []), *parallel], tmp_path,
                   {"HARNESS_DATA_DIR": str(test_data)}, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_parquet(tmp_path / "runs")
    arms = {cfg.method.name for cfg in _jobs(f"+leaderboard={name}")}
    assert set(runs["method"]) == arms and (runs["status"] == "finished").all()
    assert (runs["model"] == "tiny-random-llama").all()
    offline = _jobs(f"+leaderboard={name}")[0].offline_train_pool
    assert runs["task"].str.endswith(f"~{offline}").all(), "substitute-pool runs are filed under their own task name"
    metrics = pd.read_parquet(tmp_path / "metrics")
    assert metrics["run_id"].isin(runs["run_id"]).all() and len(metrics) > len(runs)
