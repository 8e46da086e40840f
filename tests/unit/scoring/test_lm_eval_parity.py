"""Native evaluators against lm-eval on the same model and the same real items.

Log-likelihood tasks (MMLU, GLUE): lm-eval renders its own default task prompts over our items;
they must equal ours character for character, every choice's log-likelihood must agree to float
noise (padding and batch composition differ), and the accuracy / F1 / MCC that lm-eval itself
aggregates must equal the native metric rows exactly. GSM8K: the gsm8k task's greedy generation
against lm-eval's generate_until on the same prompts, stop strings and token limit.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from harness import tasks
from harness.cli import preflight
from harness.core.paths import CONF_DIR
from harness.models.loading import load_model
from harness.scoring import lm_eval_backend
from harness.scoring.generation import generate_answers
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.scoring.loglik import best_choice
from harness.tasks.base import EvalContext
from harness.tasks.gsm8k import extract_flexible, extract_strict, reference_answer

CPU = torch.device("cpu")


def task_from_cli(*overrides: str):
    return tasks.build(OmegaConf.to_container(preflight._compose(list(overrides)).task, resolve=True))


@pytest.fixture(scope="module")
def tiny(tiny_model):
    loaded = tiny_model()
    return loaded.model.eval(), loaded.tokenizer


@pytest.fixture(scope="module")
def smollm():
    loaded = load_model(yaml.safe_load((CONF_DIR / "model" / "smollm2-135m.yaml").read_text()), CONF_DIR)
    return loaded.model.eval(), loaded.tokenizer


def assert_parity(task, data, model, tok, tol: float) -> dict:
    """Score data.eval natively and through lm-eval; check prompts, log-likelihoods and lm-eval's
    own aggregate metrics against the native metric rows. Returns the native metric rows."""
    native = task.score(EvalContext(model, tok, CPU, 512), data)
    native_rows = {m.metric: m.value for m in task.metrics(EvalContext(model, tok, CPU, 512), data, native)}
    parts = task.lm_eval_tasks(data)
    run = lm_eval_backend.run(model, tok, [t for t, _ in parts], task.cfg.batch_size, CPU,
                              task.cfg.num_fewshot)
    for lm_task, positions in parts:
        rows = run.samples[lm_task.name]
        assert [r["doc_id"] for r in rows] == list(range(len(positions)))
        lm_scores = lm_eval_backend.choice_scores(tok, rows)
        for pos, row, lm in zip(positions, rows, lm_scores):
            item = data.eval[pos]
            assert [tuple(a) for a in row["arguments"]] == [(task.context(item), c) for c in task.choices(item)]
            assert [s.logprob for s in lm] == pytest.approx([s.logprob for s in native[pos]], abs=tol)
            assert best_choice(lm) == best_choice(native[pos])
        # lm-eval's own aggregates: MMLU per subject; GLUE acc / F1 / MCC (STS-B's are ours only).
        reported = run.results[lm_task.name]
        if task.name == "mmlu":
            compare = {f"acc/{lm_task.name.removeprefix('harness_mmlu_')}": "acc"}
        else:
            compare = {m: m for m in task.spec.metrics if m in ("acc", "f1", "mcc")}
        for ours, theirs in compare.items():
            assert native_rows[ours] == pytest.approx(reported[f"{theirs},none"], abs=1e-12), (lm_task.name, ours)
    assert run.identity["lm_eval_version"] and set(run.identity["task_hashes"]) == {t.name for t, _ in parts}
    return native_rows


def test_mmlu_five_shot_parity_on_tiny_random_llama(tiny, test_data):
    task = task_from_cli("task=mmlu", "task.subjects=[abstract_algebra,high_school_us_history,virology]",
                         "task.n_eval=3", "task.num_fewshot=5", "task.batch_size=4")
    data = task.load({"dir": str(test_data), "order": ["local"]})
    assert_parity(task, data, *tiny, tol=1e-4)


@pytest.mark.slow
def test_mmlu_zero_shot_parity_on_smollm2(smollm, test_data):
    task = task_from_cli("task=mmlu", "task.subjects=[anatomy,marketing]", "task.n_eval=4")
    data = task.load({"dir": str(test_data), "order": ["local"]})
    rows = assert_parity(task, data, *smollm, tol=1e-3)
    assert rows["acc"] > 0.25  # a real model beats chance on these items


@pytest.mark.parametrize("key", ["sst2", "mrpc", "rte", "cola", "qnli", "stsb"])
def test_glue_parity_on_tiny_random_llama(tiny, test_data, key):
    task = task_from_cli(f"task=glue_{key}", "task.n_eval=12", "task.batch_size=5")
    data = task.load({"dir": str(test_data), "order": ["local"]})
    assert_parity(task, data, *tiny, tol=1e-4)


@pytest.mark.slow
def test_glue_parity_on_smollm2(smollm, test_data):
    for key in ("sst2", "rte"):
        task = task_from_cli(f"task=glue_{key}", "task.n_eval=6")
        data = task.load({"dir": str(test_data), "order": ["local"]})
        assert_parity(task, data, *smollm, tol=1e-3)


def test_lm_eval_evaluator_writes_the_native_rows_and_its_provenance(tiny, test_data):
    task = task_from_cli("task=glue_mrpc", "task.n_eval=10")
    data = task.load({"dir": str(test_data), "order": ["local"]})
    native_ctx, lm_ctx = EvalContext(*tiny, CPU, 512), EvalContext(*tiny, CPU, 512)
    native = task.evaluate(native_ctx, data)
    task.cfg = dataclasses.replace(task.cfg, evaluator="lm_eval")
    through_lm_eval = task.evaluate(lm_ctx, data)
    assert [(m.metric, m.value, m.version) for m in native] == [(m.metric, m.value, m.version) for m in through_lm_eval]
    assert [s["prediction"] for s in native_ctx.samples] == [s["prediction"] for s in lm_ctx.samples]
    assert native_ctx.identity == {}
    assert lm_ctx.identity["evaluator"] == "lm_eval" and len(lm_ctx.identity["task_hashes"]["harness_glue_mrpc"]) == 64


def gsm8k_parity(model, tok, test_data, n_items: int, max_new_tokens: int) -> tuple[int, int]:
    """(items whose strict or flexible answer differs between the evaluators, items compared)."""
    cfg = {**yaml.safe_load((CONF_DIR / "task" / "gsm8k.yaml").read_text()), "n_eval": n_items}
    task = tasks.build(cfg)
    data = task.load({"dir": str(test_data), "order": ["local"]})
    native = generate_answers(model, tok, [task.prompt(x) for x in data.eval], max_new_tokens, cfg["stop"],
                             cfg["eval_batch_size"], CPU)
    lm, identity = lm_eval_backend.greedy_generations(
        model, tok, LmEvalTask("harness_gsm8k", "gsm8k/gsm8k.yaml", data.eval), cfg["stop"], max_new_tokens,
        cfg["eval_batch_size"], CPU)
    assert identity["num_fewshot"] == 0 and len(lm) == len(native)
    refs = [reference_answer(x["answer"]) for x in data.eval]
    differ = sum((extract_strict(a) == r, extract_flexible(a) == r) != (extract_strict(b) == r, extract_flexible(b) == r)
                 for a, b, r in zip(native, lm, refs))
    return differ, len(refs)


def test_gsm8k_generation_parity_on_smollm2(smollm, test_data):
    differ, n = gsm8k_parity(*smollm, test_data, n_items=4, max_new_tokens=16)
    assert differ == 0, f"{differ} of {n} items score differently"


@pytest.mark.slow
def test_gsm8k_generation_parity_on_100_items(smollm, test_data):
    differ, n = gsm8k_parity(*smollm, test_data, n_items=100, max_new_tokens=64)
    assert differ <= n // 100, f"{differ} of {n} items score differently"
