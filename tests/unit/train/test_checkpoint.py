"""In-run checkpoints (harness/train/checkpoint.py): every method, stopped after a checkpoint and
resumed in a freshly built model, ends bit for bit where an uninterrupted training ends; a kill
during a save leaves the previous checkpoint usable; saves come every N steps or N minutes."""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.core.errors import RunFailed
from harness.train import checkpoint
from harness.train.checkpoint import Checkpointer, open_checkpoint
from harness.train.loop import StepOptions, TrainResult, train
from methods._core.base import BuildContext, Method, MethodConfig
from tests.conftest import REPO
from tests.unit.methods.test_methods import ALL_LINEAR
from tests.unit.methods.test_methods_native import SMALL as NATIVE_SMALL
from tests.unit.methods.test_methods_peft import SMALL as PEFT_SMALL
from tests.unit.methods.test_methods_precision import FAST

CFG = StepOptions(grad_accum=2, warmup_ratio=0.25, grad_clip=1.0, precision='fp32')
STEPS, EVERY, STOP_AT = 6, 2, 5  # stopped during step 5's callback: the last checkpoint is step 4's
# Small, valid options on the test model; the stateful methods set so that their state changes
# across the stop: LISA redraws its layers every 2 steps, AdaLoRA prunes and fixes its rank pattern.
OPTIONS = {
    **NATIVE_SMALL, **PEFT_SMALL,
    "lora": {"r": 4, "target_modules": ALL_LINEAR}, "dora": {"r": 4}, "pissa": {"r": 4}, "ia3": {}, "full": {},
    "prompt_tuning": {"num_virtual_tokens": 4},
    "lisa": {"n_layers": 1, "interval": 2},
    "adalora": {"r": 2, "init_r": 4, "total_step": 4},
    "mezo": {"mode": "full", "eps": 1e-2},
}
LR = {"mezo": 1e-3, "lisa": 1e-3, "full": 1e-3, "gmt": 1e-3, "hft": 1e-3}


class Stopped(Exception):
    """Stands in for a kill: raised from the step callback, after the last checkpoint."""


@pytest.fixture(scope="module")
def fresh(tiny_model):
    loaded = tiny_model()
    return lambda: dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))


def _batches(start: int = 0):
    """A fixed stream of distinct micro-batches (padded rows included), from micro-batch `start` on."""
    gen = torch.Generator().manual_seed(7)
    pool = []
    for _ in range(9):
        ids = torch.randint(0, 500, (2, 10), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, 7:] = 0
        pool.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    index = start
    while True:
        yield pool[index % len(pool)]
        index += 1


def _build(fresh, name):
    loaded = fresh()
    method = methods.build({"name": name, **OPTIONS.get(name, {})})
    if method.needs_calibration:
        method.calibrate(loaded.model, _batches())
    torch.manual_seed(0)
    return method, method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))


def _train(method, model, name, saved=None, on_step=None, start=0):
    return train(model, method, _batches(start), CFG, LR.get(name, 1e-2), Budget("t", max_steps=STEPS),
                 torch.device("cpu"), 40.0, on_step=on_step, checkpoint=saved)


def _stop_at(step):
    def on_step(s, loss, lr):
        if s == step:
            raise Stopped

    return on_step


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# qlora needs a CUDA GPU and bitsandbytes; its 4-bit base never trains, the rest is LoRA's.
# About a second each: the methods that keep state across steps, and one or two per family, in the
# fast target; the rest in the slow one.
STATEFUL = {"lisa", "mezo", "adalora", "gmt", "lora_fa", "hft", "mola"}
METHODS = [n if n in FAST | STATEFUL else pytest.param(n, marks=pytest.mark.slow)
           for n in methods.names() if n not in ("qlora", "base")]  # base never trains: nothing to checkpoint


@pytest.mark.parametrize("name", METHODS)
def test_a_stopped_training_resumes_to_the_uninterrupted_result(fresh, tmp_path, name):
    method, model = _build(fresh, name)
    torch.manual_seed(1)  # dropout and other draws during training
    reference = _train(method, model, name)
    expected = _params(model)

    method, model = _build(fresh, name)
    torch.manual_seed(1)
    with pytest.raises(Stopped):
        _train(method, model, name, Checkpointer(tmp_path / "train.pt", EVERY), _stop_at(STOP_AT))

    method, model = _build(fresh, name)
    torch.manual_seed(12345)  # whatever the new process drew before: the checkpoint's RNG states win
    saved = Checkpointer(tmp_path / "train.pt", EVERY)
    assert saved.resumed_step == STOP_AT - 1
    resumed = _train(method, model, name, saved, start=saved.resumed_step * CFG.grad_accum)

    assert resumed.losses == reference.losses  # every step once, each loss bit for bit
    assert (resumed.steps, resumed.tokens, resumed.sequences) == (reference.steps, reference.tokens, reference.sequences)
    got = _params(model)
    assert got.keys() == expected.keys()
    changed = [n for n in got if not torch.equal(got[n], expected[n])]
    assert changed == []


class TinyMethod(Method):
    name = "tiny"


def _tiny_training(seed: float):
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return model, TinyMethod(MethodConfig()), optimizer, scheduler


KILLED_SAVE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from harness.train.checkpoint import Checkpointer
    from harness.train.loop import TrainResult
    from tests.unit.train.test_checkpoint import _tiny_training

    for value in (1.0, 2.0):  # HARNESS_TEST_KILL_AT=mid_checkpoint:2: killed inside the second save
        model, method, optimizer, scheduler = _tiny_training(value)
        Checkpointer(Path(sys.argv[1])).save(model, method, optimizer, scheduler, TrainResult(steps=int(value)), 0.0)
""")


def test_a_kill_during_a_save_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run" / "train.pt"
    env = {**os.environ, "HARNESS_TEST_KILL_AT": "mid_checkpoint:2"}
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(list(path.parent.glob(".train.pt.*.tmp"))) == 1  # the second save, never renamed

    saved = Checkpointer(path)
    assert saved.resumed_step == 1
    model, method, optimizer, scheduler = _tiny_training(0.0)
    result = TrainResult()
    saved.begin(model, method, optimizer, scheduler, result)
    assert torch.equal(model.weight, torch.full((2, 3), 1.0)) and result.steps == 1

    saved.save(model, method, optimizer, scheduler, result, 0.0)  # the next save clears what the kill left
    assert [p.name for p in path.parent.iterdir()] == ["train.pt"]


def test_saves_come_every_n_steps_or_every_n_minutes(tmp_path):
    now = [0.0]
    steps = Checkpointer(tmp_path / "a.pt", every_steps=3, clock=lambda: now[0])
    assert [s for s in range(1, 10) if steps.due(s)] == [3, 6, 9]

    minutes = Checkpointer(tmp_path / "b.pt", every_minutes=2, clock=lambda: now[0])
    model, method, optimizer, scheduler = _tiny_training(0.0)
    minutes.begin(model, method, optimizer, scheduler, TrainResult())
    now[0] = 119.0
    assert not minutes.due(1)
    now[0] = 120.0
    assert minutes.due(2)
    minutes.save(model, method, optimizer, scheduler, TrainResult(steps=2), 120.0)
    now[0] = 200.0
    assert not minutes.due(3)  # two minutes from the last save, not from the start
    now[0] = 240.0
    assert minutes.due(4)


def test_checkpoints_are_off_unless_asked_and_live_under_the_run_id(tmp_path):
    assert open_checkpoint(0, 0, tmp_path, "abc") is None
    saved = open_checkpoint(0, 5, tmp_path, "abc", "lr-0.001")
    assert saved.path == tmp_path / "checkpoints" / "abc" / "lr-0.001.pt" and saved.resumed_step == 0
    model, method, optimizer, scheduler = _tiny_training(0.0)
    saved.save(model, method, optimizer, scheduler, TrainResult(steps=3), 1.5)
    assert open_checkpoint(4, 0, tmp_path, "abc", "lr-0.001").resumed_step == 3
    checkpoint.discard(tmp_path, "abc")
    assert not (tmp_path / "checkpoints").exists()


def test_a_checkpoint_that_does_not_fit_the_run_is_a_one_line_failure(tmp_path):
    path = tmp_path / "train.pt"
    model, method, optimizer, scheduler = _tiny_training(0.0)
    Checkpointer(path).save(model, method, optimizer, scheduler, TrainResult(steps=1), 0.0)
    other = torch.nn.Linear(3, 4)
    with pytest.raises(RunFailed, match=r"^cannot resume from the checkpoint .*: it holds other trainable parameters than this run builds; the run starts over once .* is gone"):
        Checkpointer(path).begin(other, method, torch.optim.AdamW(other.parameters()), scheduler, TrainResult())
    Path(path).write_bytes(b"not a checkpoint")
    with pytest.raises(RunFailed, match=r"^cannot resume from the checkpoint .*: unreadable \(UnpicklingError\); the run starts over once"):
        Checkpointer(path)


def test_a_resumed_run_says_so_in_a_metric():
    assert checkpoint.resumed_metric(0) == []
    [row] = checkpoint.resumed_metric(4)
    assert (row.task, row.metric, row.value, row.version) == ("cost", "resumed_from_step", 4.0, "cost/resumed/v1")
