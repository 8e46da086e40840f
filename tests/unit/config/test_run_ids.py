"""Run ids never change without a migration: users resume sweeps on old result folders, and a run
whose id changed would be trained again (and its old rows never matched). These ids were computed
with the harness before the redesign of issue 15 (and checked equal to those of commit 08b3bb5), on
the vendored data; a change that moves one must come with a migration of existing folders."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from harness.cli import preflight
from harness.run.prepare import prepare

TINY = ["model=tiny-random-llama"]
PINNED = {
    "default (smollm2-135m lora gsm8k steps50)": ([], "6e29f7dee89af1fe"),
    "pissa tiny smoke": ([*TINY, "method=pissa", "budget=smoke"], "1ff1b42ce6fcfa5d"),
    "dora mmlu 2 subjects": ([*TINY, "method=dora", "budget=smoke", "task=mmlu", "task.subjects=[anatomy,virology]",
                              "task.n_eval=4"], "f1c01ba1712fce68"),
    "ia3 glue_sst2 lr override": ([*TINY, "method=ia3", "task=glue_sst2", "train.lr=0.001"], "86c7542d4598ac61"),
    "lora parameter budget": ([*TINY, "method=lora", "budget=params_0.125pct"], "59c06eab95047dd4"),
    "series_adapter commonsense suite": ([*TINY, "method=series_adapter", "budget=smoke", "task=llm_adapters_commonsense",
                                          "task.train_pool=train_splits", "task.datasets=[arc_e,arc_c]", "task.n_eval=4"],
                                         "4db9d8cae6a19745"),
    "encoder lora sst2": (["model=all-minilm-l6-v2", "method=lora", "task=glue_sst2", "budget=smoke"], "ab8ec2d1ba17a820"),
    "prompt_tuning kl_drift seed 3": ([*TINY, "method=prompt_tuning", "budget=smoke", "seed=3",
                                       "forgetting.probes=[kl_drift]"], "b358726f0c60a9c9"),
}
SWEEP = {  # +sweep=lora_vs_pissa, the README's demo
    ("method=lora", "seed=0"): "8b159d5826676f6d", ("method=lora", "seed=1"): "033401df5d4e75d0",
    ("method=pissa", "seed=0"): "9bba0bbb87192b3d", ("method=pissa", "seed=1"): "2ef43cf68effe974",
}


def _data(test_data) -> list[str]:
    return [f"data.dir={test_data}", "data.order=[local]"]


def _run_id(overrides: list[str]) -> str:
    cfg = preflight._compose(overrides)
    OmegaConf.resolve(cfg)
    return prepare(cfg).run_id


@pytest.mark.parametrize("name", PINNED)
def test_run_id_of_a_representative_configuration_is_pinned(name, test_data):
    overrides, expected = PINNED[name]
    assert _run_id([*overrides, *_data(test_data)]) == expected


def test_run_ids_of_the_demo_sweep_are_pinned(test_data):
    found = {}
    for job in preflight.expand_jobs(["+sweep=lora_vs_pissa", *_data(test_data)]):
        axes = tuple(o for o in job if o.startswith(("method=", "seed=")))
        found[axes] = _run_id([o for o in job if not o.startswith("hydra.")])
    assert found == SWEEP


def test_the_base_dtype_is_part_of_the_run_id_and_fp32_keeps_the_old_ids(test_data):
    """model.dtype (issue 16) entered the run id without a migration: at fp32, the behaviour from
    before it existed, it stays out of the hash (harness/config/identity.LEGACY_VALUES); `auto`
    resolves to what the run loads (fp32 on this CPU) before hashing."""
    pissa = [*TINY, "method=pissa", "budget=smoke", *_data(test_data)]
    expected = PINNED["pissa tiny smoke"][1]
    assert _run_id([*pissa, "model.dtype=auto"]) == _run_id([*pissa, "model.dtype=fp32"]) == expected
    half = {_run_id([*pissa, f"model.dtype={dtype}"]) for dtype in ("bf16", "fp16")}
    assert len(half) == 2 and expected not in half


def test_new_memory_switches_change_the_id_only_when_on_and_checkpoint_options_never(test_data):
    pissa = [*TINY, "method=pissa", "budget=smoke", *_data(test_data)]
    expected = PINNED["pissa tiny smoke"][1]
    for switch in ("gradient_checkpointing", "group_by_length", "packing"):
        assert _run_id([*pissa, f"train.{switch}=false"]) == expected
        assert _run_id([*pissa, f"train.{switch}=true"]) != expected
    assert _run_id([*pissa, "train.checkpoint_every=5", "train.checkpoint_minutes=10",
                    "train.keep_checkpoints=true"]) == expected
