"""Learning-rate fairness and validation: the carved split, steps-to-target, the lr search's choice
and its failure handling, and an lr sweep through the real CLI."""

from __future__ import annotations

import json
import math
import random

import pytest

from harness.core.errors import HarnessError, RunFailed
from harness.run import lr_search
from harness.run.heldout import carve, steps_to_target
from harness.store.result_store import ResultStore
from harness.tasks.base import TaskData
from tests.conftest import run_cli


def _data(items):
    return TaskData("t", list(items), [{"question": "eval"}], {"source": "local"})


def test_validation_split_is_carved_from_train_deterministically():
    pool = [{"question": f"q{i}", "answer": str(i)} for i in range(50)]
    data, val = carve(_data(pool), 8)
    shuffled = pool[:]
    random.Random(0).shuffle(shuffled)
    data2, val2 = carve(_data(shuffled), 8)
    key = lambda x: x["question"]
    assert sorted(val, key=key) == sorted(val2, key=key)  # the pool's order does not matter
    assert data.identity["validation"]["sha256"] == data2.identity["validation"]["sha256"]
    assert len(val) == 8 and len(data.train) == 42
    assert not {x["question"] for x in val} & {x["question"] for x in data.train}  # held out of training
    assert data.eval == [{"question": "eval"}]  # never the test split
    with pytest.raises(HarnessError, match="train.val_items=50"):
        carve(_data(pool), 50)


@pytest.mark.parametrize("points,fraction,expected", [
    ([(0, 4.0), (2, 3.0), (4, 2.2), (6, 2.0)], 0.9, 4),   # threshold 4 - 0.9 * 2 = 2.2
    ([(0, 4.0), (2, 3.0), (4, 2.2), (6, 2.0)], 0.5, 2),   # threshold 3.0
    ([(0, 4.0), (2, 3.0), (4, 2.2), (6, 2.0)], 1.0, 6),
    ([(0, 2.0), (2, 2.5)], 0.9, None),                    # no improvement: undefined
    ([(4, 2.0)], 0.9, None),                              # no step-0 value
])
def test_steps_to_target(points, fraction, expected):
    assert steps_to_target(points, fraction) == expected


def test_grid_is_relative_to_the_method_lr():
    assert lr_search.grid(2e-4, [3, 1, 0.3]) == pytest.approx([6e-5, 2e-4, 6e-4])
    with pytest.raises(HarnessError, match="positive multipliers"):
        lr_search.grid(2e-4, [1, 0])


def test_search_keeps_the_lowest_validation_loss_and_survives_divergence():
    losses = {1e-4: 2.0, 1e-3: 1.5, 1e-2: float("nan")}

    def fit(lr):
        if lr == 1e-1:
            raise RunFailed("loss became nan at step 3")
        return {"lr": lr}

    found = lr_search.search([1e-4, 1e-3, 1e-2, 1e-1], fit, lambda f: losses[f["lr"]])
    assert found.lr == 1e-3 and found.fitted == {"lr": 1e-3}
    assert found.val_losses[1e-2] == math.inf and found.val_losses[1e-1] == math.inf
    record = json.loads(found.record())
    assert record["chosen"] == 1e-3 and record["grid"] == [1e-4, 1e-3, 1e-2, 1e-1] and record["version"] == "lr_sweep/v1"
    with pytest.raises(RunFailed, match="every lr of the sweep failed"):
        lr_search.search([1.0], lambda lr: (_ for _ in ()).throw(RunFailed("nan")), lambda f: 0.0)


def test_ties_go_to_the_smaller_lr():
    assert lr_search.search([1e-3, 1e-4], lambda lr: lr, lambda f: 1.0).lr == 1e-3  # grid order decides
    assert lr_search.search(lr_search.grid(1e-3, [1, 0.1]), lambda lr: lr, lambda f: 1.0).lr == pytest.approx(1e-4)


@pytest.mark.slow
def test_lr_sweep_and_learning_curve_through_the_cli(tmp_path, test_data):
    proc = run_cli(["model=tiny-random-llama", "budget=smoke", "budget.max_steps=4", "train.lr_sweep=[0.1,1,10]",
                    "train.eval_every=2", "train.val_items=8", "task.n_eval=2", "task.max_new_tokens=4",
                    "forgetting.probes=[]"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    run = runs.iloc[0]
    record = json.loads(run["lr_grid"])
    assert record["grid"] == pytest.approx([2e-5, 2e-4, 2e-3])  # LoRA's paper lr 2e-4 x [0.1, 1, 10]
    best = min(record["val_loss"], key=record["val_loss"].get)
    assert run["lr"] == pytest.approx(float(best)) == pytest.approx(record["chosen"])
    assert run["lr_search_time_s"] > run["train_time_s"] > 0  # three candidates trained, one kept
    val = metrics[metrics["metric"] == "val_loss"]
    assert sorted(val["step"]) == [0, 2, 4] and (val["n"] == 8).all()
    assert val.sort_values("step")["value"].iloc[-1] == pytest.approx(record["val_loss"][best])
    assert json.loads(run["data_json"])["validation"]["n"] == 8
