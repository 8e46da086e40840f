"""Forgetting probes and target gain: zero on an unchanged model, base scores cached once per model
x eval config, versioned rows, and the probes of a real CLI run side by side with learning."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.config.run_config import ForgettingConfig, GeneralSuiteConfig
from harness.probes.composite import build_probes
from harness.probes.general_suite import GeneralSuiteProbe
from harness.probes.target_gain import TargetGain
from harness.store.result_store import ResultStore
from harness.tasks import build
from harness.tasks.base import EvalContext
from tests.conftest import run_cli

CPU = torch.device("cpu")
ROOT_CFG = yaml.safe_load((CONF_DIR / "config.yaml").read_text())["forgetting"]
VERSIONED = re.compile(r"^[a-z0-9_/]+/v\d+(\+[a-z0-9_/]+/v\d+)?$")


def _suite_cfg(n_eval: int) -> dict:
    specs = [{**s, "with": {**s["with"], "n_eval": n_eval}} for s in ROOT_CFG["general_suite"]["tasks"]]
    return GeneralSuiteConfig(required=False, tasks=specs)


def _data_cfg(test_data) -> dict:
    return {"dir": str(test_data), "order": ["local"]}


def test_default_general_suite_is_built_from_registered_tasks_eval_items(test_data, tmp_path):
    probe = GeneralSuiteProbe(_suite_cfg(6), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    assert [task.name for task, _, _ in probe.members] == [s["task"] for s in ROOT_CFG["general_suite"]["tasks"]]
    for task, data, _ in probe.members:  # n_eval items of every subject / dataset
        assert len(data.eval) == 6 * len(getattr(task.cfg, "datasets", None) or task.cfg.subjects)


def test_general_suite_delta_is_zero_when_the_model_is_unchanged(test_data, tmp_path, tiny_model):
    loaded = tiny_model()
    probe = GeneralSuiteProbe(_suite_cfg(6), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    probe.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    rows = {(m.task, m.metric): m for m in probe.measure(loaded.model, loaded.tokenizer, CPU)}
    members = [k for k in rows if k[0].startswith("forgetting/general_suite/")]
    assert sorted(t for t, _ in members) == [f"forgetting/general_suite/{m}" for m in ("arc_c", "arc_e", "mmlu")]
    for key in members:
        assert rows[key].value == 0 and rows[key].stderr == 0 and rows[key].n in (6, 6 * 8)
    suite = "forgetting/general_suite"
    assert rows[(suite, "forgetting_acc_delta")].value == 0
    assert rows[(suite, "general_acc_before")].value == rows[(suite, "general_acc_after")].value
    assert all(VERSIONED.match(m.version) for m in rows.values()), [m.version for m in rows.values()]


def test_base_scores_are_computed_once_per_model_and_eval_config(test_data, tmp_path, tiny_model, monkeypatch):
    loaded = tiny_model()
    first = GeneralSuiteProbe(_suite_cfg(4), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    first.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == len(first.members)  # one cached base evaluation per spec

    second = GeneralSuiteProbe(_suite_cfg(4), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    for task, _, _ in second.members:  # a second run must read the cache, never evaluate the base again
        monkeypatch.setattr(task, "evaluate", lambda *a: pytest.fail("base scores recomputed"))
    second.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    assert second.before == first.before and sorted(tmp_path.glob("*.json")) == files
    monkeypatch.undo()

    other_items = GeneralSuiteProbe(_suite_cfg(5), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    other_items.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    other_model = GeneralSuiteProbe(_suite_cfg(4), _data_cfg(test_data), tmp_path, CONF_DIR, 256)
    other_model.baseline(loaded.model, loaded.tokenizer, {"model": "another"}, CPU)
    assert len(list(tmp_path.glob("*.json"))) == 3 * len(first.members)


def test_target_gain_pairs_items_and_is_zero_without_training(test_data, tmp_path, tiny_model):
    cfg = {**yaml.safe_load((CONF_DIR / "task" / "gsm8k.yaml").read_text()), "n_eval": 3, "max_new_tokens": 4}
    task = build(cfg)
    data = task.load(_data_cfg(test_data))
    loaded = tiny_model()
    gain = TargetGain(tmp_path, task, data, 256)
    gain.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    ctx = EvalContext(loaded.model, loaded.tokenizer, CPU, 256)
    metrics = task.evaluate(ctx, data)
    rows = {m.metric: m for m in gain.measure(metrics, ctx.samples)}
    assert set(rows) == {"gain_exact_match_strict", "gain_exact_match_flexible", "gain_exact_match_answer_is", "gain_answer_ce"}
    for m in rows.values():
        assert m.task == "gsm8k" and m.n == 3 and abs(m.value) < 1e-6 and VERSIONED.match(m.version)
    assert rows["gain_answer_ce"].version == "gain/v1+gsm8k/answer_ce/v1" and not rows["gain_answer_ce"].higher_is_better


def forgetting(**changes) -> ForgettingConfig:
    return ForgettingConfig.of({**ROOT_CFG, **changes})


def test_probe_list_and_the_older_single_probe_key():
    assert forgetting(probes=["general_text", "kl_drift"], probe=None).probe_names() == ["general_text", "kl_drift"]
    assert forgetting(probes=["general_text"], probe="kl_drift").probe_names() == ["kl_drift"]
    assert forgetting(probes=["general_text"], probe="none").probe_names() == []
    with pytest.raises(HarnessError, match=r"^forgetting.probes=\['nope'\] is invalid: it must be a list of items, each one of "
                                           r"general_text, general_suite, kl_drift$"):
        forgetting(probes=["nope"], probe=None)
    with pytest.raises(HarnessError, match=r"^forgetting.kl_drift.bogus is not an option of forgetting.kl_drift; its options are: "):
        forgetting(kl_drift={**ROOT_CFG["kl_drift"], "bogus": 1})


def test_general_suite_naming_an_unknown_task_is_a_one_line_error(test_data, tmp_path):
    cfg = forgetting(probes=["general_suite"], general_suite={"required": False, "tasks": [{"task": "nope", "metric": "acc"}]})
    with pytest.raises(HarnessError) as err:
        build_probes(cfg, _data_cfg(test_data), tmp_path, CONF_DIR, None, None, 256)
    assert "forgetting.general_suite names task 'nope'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_sweep_reports_learning_and_forgetting_and_computes_base_scores_once(tmp_path, test_data):
    proc = run_cli(["+sweep=smoke", "method=lora", "seed=0,1", "task.n_eval=2", "task.max_new_tokens=4",
                    "forgetting.probes=[general_text,general_suite,kl_drift]",
                    "forgetting.general_suite.tasks.0.with.n_eval=2", "forgetting.general_suite.tasks.1.with.n_eval=8"],
                   tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one cached base value each: general text, the two general-suite specs, the task (kl_drift is not cached)
    assert len(list((tmp_path / "cache" / "forgetting").glob("*.json"))) == 4
    runs, metrics, _ = ResultStore(tmp_path).read()
    final = metrics[metrics["step"].isna()]
    assert len(runs) == 2
    for run_id in runs["run_id"]:
        names = set(final.loc[final["run_id"] == run_id, "metric"])
        assert {"gain_exact_match_flexible", "gain_answer_ce", "forgetting_ce_delta", "forgetting_acc_delta",
                "general_acc_before", "forgetting_kl"} <= names
    before = final[final["metric"] == "general_acc_before"]["value"]
    assert before.nunique() == 1  # the second run read the first one's base scores
    assert final["metric_version"].map(lambda v: bool(VERSIONED.match(v))).all()
    assert proc.stdout.count("learning: gain_exact_match_strict=") == 2 and "forgetting_acc_delta=" in proc.stdout


def test_general_suite_without_its_data_is_skipped_unless_required(tmp_path, capsys):
    cfg = forgetting(probes=["general_suite"], target_gain=False)
    no_data = {"dir": str(tmp_path), "order": ["local"]}
    assert build_probes(cfg, no_data, tmp_path, CONF_DIR, None, None, 256).probes == []
    assert "general_suite skipped" in capsys.readouterr().out
    build_probes(cfg, no_data, tmp_path, CONF_DIR, None, None, 256)
    assert capsys.readouterr().out == ""  # once per process, not once per job of a sweep
    required = forgetting(probes=["general_suite"], target_gain=False,
                          general_suite={**ROOT_CFG["general_suite"], "required": True})
    with pytest.raises(HarnessError, match="^no data for "):
        build_probes(required, no_data, tmp_path, CONF_DIR, None, None, 256)
