"""The real config tree composes on CPU: every option of every group, every sweep file."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import methods
from harness.cli import preflight
from harness.core.paths import CONF_DIR

GROUPS = ("model", "method", "task", "budget")
ALIASES = {("method", "none"): "base",  # another name for a config: method=none is the base model
           ("task", "lm_eval"): "arc_easy"}  # task=lm_eval runs the lm-eval task task.name names


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _sweeps() -> list[str]:
    return _options("sweep")


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes(group, option):
    cfg = preflight._compose([f"{group}={option}"])
    OmegaConf.resolve(cfg)
    assert cfg[group].name == ALIASES.get((group, option), option)


@pytest.mark.parametrize("name", _options("method"))
def test_every_method_yaml_builds_its_registered_method(name):
    cfg = preflight._compose([f"method={name}"])
    method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    assert method.name == ALIASES.get(("method", name), name) and method.config.lr > 0
    assert method.paper and method.backend in ("peft", "native")


def test_every_registered_method_has_a_yaml():
    assert set(methods.names()) == set(_options("method")) - {o for g, o in ALIASES if g == "method"}


@pytest.mark.parametrize("sweep", _sweeps())
def test_every_sweep_composes_and_expands(sweep):
    cfg = preflight._compose([f"+sweep={sweep}"], with_hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.sweep_name == sweep
    jobs = preflight.expand_jobs([f"+sweep={sweep}"])
    assert len(jobs) >= 2
    for job in jobs:
        OmegaConf.resolve(preflight._compose(job))


def test_lora_vs_pissa_crosses_two_methods_and_two_seeds_on_smollm():
    jobs = preflight.expand_jobs(["+sweep=lora_vs_pissa"])
    combos = {(next(o for o in j if o.startswith("method=")), next(o for o in j if o.startswith("seed="))) for j in jobs}
    assert combos == {("method=lora", "seed=0"), ("method=lora", "seed=1"), ("method=pissa", "seed=0"), ("method=pissa", "seed=1")}
    for job in jobs:
        cfg = preflight._compose(job)
        assert cfg.model.name == "smollm2-135m" and cfg.budget.max_steps >= 50
        assert cfg.method.r == 8 and cfg.method.lr == 1e-4 and cfg.task.n_eval >= 100


def test_command_line_model_and_task_override_the_sweep_defaults():
    jobs = preflight.expand_jobs(["+sweep=lora_vs_pissa", "model=qwen2.5-0.5b", "task=gsm8k"])
    cfg = preflight._compose(jobs[0])
    assert cfg.model.hub_id == "Qwen/Qwen2.5-0.5B" and cfg.model.source == "hub"


def test_command_line_sweep_axis_replaces_the_files():
    jobs = preflight.expand_jobs(["+sweep=lora_vs_pissa", "seed=0,1,2"])
    assert len(jobs) == 6
