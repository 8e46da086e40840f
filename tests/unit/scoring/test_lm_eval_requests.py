"""lm-eval's own requests scored natively (harness/scoring/lm_eval_requests.py): on the vendored
ARC-Easy, ARC-Challenge, PIQA and WinoGrande items, every request's log-likelihood and every
document's metric values equal lm-eval's own evaluation of the same model."""

from __future__ import annotations

import json

import pytest
import torch

from harness.core.errors import HarnessError
from harness.data import lm_eval_docs
from harness.scoring import lm_eval_backend, lm_eval_requests
from harness.scoring.lm_eval_backend import LmEvalTask

CPU = torch.device("cpu")
TASKS = {"arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml", "piqa": "piqa/piqa.yaml",
         "winogrande": "winogrande/default.yaml"}


def _task(test_data, name: str, n: int = 8) -> LmEvalTask:
    folder, convert = lm_eval_docs.CONVERTERS[name]
    items = json.loads((test_data / "llm_adapters" / "dataset" / folder / "test.json").read_text(encoding="utf-8"))
    return LmEvalTask(f"harness_{name}", TASKS[name], convert(items[:n], folder))


@pytest.fixture(scope="module")
def tiny(tiny_model):
    loaded = tiny_model()
    return loaded.model.eval(), loaded.tokenizer


@pytest.mark.parametrize("name", sorted(TASKS))
def test_native_scores_and_metrics_equal_lm_evals_on_its_own_requests(tiny, test_data, name):
    model, tok = tiny
    task = _task(test_data, name)
    native = lm_eval_requests.score(model, tok, task, 8, CPU, 0)
    rows = lm_eval_backend.run(model, tok, [task], 8, CPU, 0).samples[task.name]
    assert len(native.scores) == len(rows) == 8
    for ours, row in zip(native.scores, rows):
        theirs = [(float(r[0][0]), bool(r[0][1])) for r in row["resps"]]
        assert [g for _, g in ours] == [g for _, g in theirs]
        assert [ll for ll, _ in ours] == pytest.approx([ll for ll, _ in theirs], abs=1e-4)
    for values, row in zip(native.values, rows):
        assert values.keys() <= row.keys() and all(values[k] == row[k] for k in values)  # acc (and acc_norm) per item
    assert native.higher_is_better["acc"] is True and "acc" in native.aggregation


def test_a_generation_task_is_refused_by_the_native_scorer(tiny, test_data):
    model, tok = tiny
    docs = [{"question": "2+2?", "answer": "#### 4"}]
    with pytest.raises(HarnessError, match="makes generate_until requests; the native evaluator scores log-likelihood ones only"):
        lm_eval_requests.score(model, tok, LmEvalTask("harness_gsm8k_gen", "gsm8k/gsm8k.yaml", docs), 8, CPU, 0)
