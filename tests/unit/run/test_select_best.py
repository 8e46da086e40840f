"""select_best/v1 (`train.select_best`, harness/run/heldout.py): the run keeps the trainable state of
the validation point with the lowest val_loss, as HF Trainer's load_best_model_at_end; a run it
cannot serve is refused before it starts. Real training of the tiny model."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.run.fit import fit_method, set_up
from harness.run.heldout import BestState, Curve, val_loss
from harness.run.prepare import prepare
from harness.run.tracking import Tracker
from harness.store.record import RunRecord

EVERY, STEPS, MAX_LEN = 1, 6, 64
# lr 5 on LoRA makes the tiny model's validation loss go down and up again within 6 steps (seed 0)
RUN = ["model=tiny-random-llama", "method=lora", "budget=smoke", f"budget.max_steps={STEPS}", f"train.max_seq_len={MAX_LEN}",
       "train.batch_size=2", f"train.eval_every={EVERY}", "train.val_items=8", "train.lr=5.0",
       "forgetting.probes=[]", "forgetting.target_gain=false"]


def _prepare(test_data, tmp_path, *overrides: str):
    cfg = preflight._compose([*RUN, f"data.dir={test_data}", "data.order=[local]", f"results_dir={tmp_path}", *overrides])
    OmegaConf.resolve(cfg)
    return prepare(cfg)


def _fit(p):
    record = RunRecord(run_id=p.run_id)
    setup = set_up(p, torch.device("cpu"), record)
    fitted = fit_method(p, setup, p.run.train.lr, record, Tracker(None, p.run_id, "test", [], {}, "."))
    return setup, fitted


def test_the_kept_state_is_the_best_validation_point(test_data, tmp_path, capfd):
    p = _prepare(test_data, tmp_path, "train.select_best=true")
    setup, fitted = _fit(p)
    points = fitted.curve.points
    assert [s for s, _ in points] == list(range(STEPS + 1))  # step 0, every step, the end
    grid = [(s, loss) for s, loss in points if s > 0 and s % EVERY == 0]
    best_step, best_loss = min(grid, key=lambda point: point[1])  # min keeps the first of equal losses
    assert best_step < STEPS and best_loss < points[-1][1], "the setting must make the last state not the best"
    assert (fitted.curve.best.step, fitted.curve.best.loss) == (best_step, best_loss)
    assert fitted.curve.kept_loss() == best_loss  # what an lr search scores the candidate by
    now = val_loss(fitted.model, setup.loaded.tokenizer, p.task, p.validation, 8, MAX_LEN, torch.device("cpu"))
    assert now == pytest.approx(best_loss, abs=1e-6)  # the model is the kept state, not the last
    assert f"kept the state of step {best_step} of {STEPS}" in capfd.readouterr().err


def test_step_zero_and_an_off_grid_end_are_never_kept_and_a_tie_keeps_the_earlier():
    model = torch.nn.Linear(2, 2)
    best = BestState(model)
    losses = iter([1.0, 3.0, 2.0, 2.0, 0.5])  # step 0, 2, 4, 6, then the end at 7
    curve = Curve(lambda: next(losses), 2, best)
    curve.start()  # the untrained state: the lowest so far, measured but never a candidate
    for step in range(1, 8):
        with torch.no_grad():
            model.weight.fill_(step)  # stands for training
        curve.step(step)
    curve.finish(7)  # off the grid: measured, not a candidate (no checkpoint of it in the Trainer)
    assert curve.points == [(0, 1.0), (2, 3.0), (4, 2.0), (6, 2.0), (7, 0.5)]
    assert (best.step, best.loss) == (4, 2.0)  # step 6 ties and does not replace it
    assert best.restore() == 4 and torch.all(model.weight == 4)
    empty = BestState(model)
    assert empty.restore() is None and torch.all(model.weight == 4)  # nothing kept: the state stays


def test_select_best_without_validation_points_is_refused_in_one_line(test_data, tmp_path):
    with pytest.raises(HarnessError) as err:
        _prepare(test_data, tmp_path, "train.select_best=true", "train.eval_every=0")
    assert "train.eval_every" in str(err.value) and "\n" not in str(err.value)


def test_a_method_with_state_beyond_its_parameters_is_refused(test_data, tmp_path):
    with pytest.raises(HarnessError, match="method lisa carries more state"):
        _prepare(test_data, tmp_path, "train.select_best=true", "method=lisa", "method.n_layers=1")
