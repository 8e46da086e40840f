"""lm-eval's own requests answered natively (harness/scoring/lm_eval_requests.py): on the vendored
ARC-Easy, ARC-Challenge, PIQA, WinoGrande and BoolQ items every request's log-likelihood, and on
GSM8K every greedy generation, and every document's metric values (under each of lm-eval's filters)
equal lm-eval's own evaluation of the same model."""

from __future__ import annotations


import pytest
import torch
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.data import lm_eval_docs
from harness.data.layout import read_json_rows
from harness.models.loading import load_model
from harness.scoring import lm_eval_backend, lm_eval_requests
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.scoring.scorer import Scorer

CPU = torch.device("cpu")
TASKS = {"arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml", "piqa": "piqa/piqa.yaml",
         "winogrande": "winogrande/default.yaml", "boolq": "super_glue/boolq/default.yaml", "gsm8k": "gsm8k/gsm8k.yaml"}


def _task(test_data, name: str, n: int = 8) -> LmEvalTask:
    local = lm_eval_docs.CONVERTERS[name]
    return LmEvalTask(f"harness_{name}", TASKS[name], local.convert(read_json_rows(test_data / local.relative)[:n], name))


@pytest.fixture(scope="module")
def tiny(tiny_model):
    loaded = tiny_model()
    return loaded.model.eval(), loaded.tokenizer


@pytest.mark.parametrize("name", sorted(set(TASKS) - {"gsm8k"}))
def test_native_scores_and_metrics_equal_lm_evals_on_its_own_requests(tiny, test_data, name):
    model, tok = tiny
    task = _task(test_data, name)
    native = lm_eval_requests.score(Scorer(model, tok, CPU, model.config.max_position_embeddings), task, 8, 0)
    run = lm_eval_backend.run(model, tok, [task], 8, CPU, 0)
    rows = run.samples[task.name]
    assert len(native.scores) == len(rows) == 8
    for ours, row in zip(native.scores, rows):
        theirs = [(float(r[0][0]), bool(r[0][1])) for r in row["resps"]]
        assert [g for _, g in ours] == [g for _, g in theirs]
        assert [ll for ll, _ in ours] == pytest.approx([ll for ll, _ in theirs], abs=1e-4)
    assert native.values == run.values[task.name]  # acc (and acc_norm) per item
    assert native.higher_is_better["acc"] is True


def check_generation_parity(model, tok, data_dir, n: int, max_gen_toks: int) -> list[str]:
    """Native and lm-eval's greedy GSM8K generations and per-filter values are equal; the generations."""
    task = LmEvalTask("harness_gsm8k", TASKS["gsm8k"], _task(data_dir, "gsm8k", n).docs,
                      overrides={"generation_kwargs": {"until": ["Question:", "\n\n"], "do_sample": False,
                                                       "max_gen_toks": max_gen_toks}})
    native = lm_eval_requests.score(Scorer(model, tok, CPU, model.config.max_position_embeddings), task, 4, 0)
    run = lm_eval_backend.run(model, tok, [task], 4, CPU, 0)
    generated = [s[0] for s in native.scores]
    assert generated == [row["resps"][0][0] for row in run.samples[task.name]]
    assert native.values == run.values[task.name]
    assert set(native.values[0]) == {"exact_match_strict_match", "exact_match_flexible_extract"}
    return generated


def test_native_generations_and_extracted_answers_equal_lm_evals(tiny, test_data):
    model, tok = tiny
    check_generation_parity(model, tok, test_data, 6, 48)


@pytest.mark.slow
def test_smollm_generations_and_extracted_answers_equal_lm_evals(test_data):
    loaded = load_model(yaml.safe_load((CONF_DIR / "model" / "smollm2-135m.yaml").read_text()), CONF_DIR)
    generated = check_generation_parity(loaded.model.eval(), loaded.tokenizer, test_data, 8, 64)
    assert len(set(generated)) > 4 and all(any(ch.isdigit() for ch in g) for g in generated)  # real answers, not noise


def test_requests_the_native_evaluator_cannot_answer_are_one_line(tiny):
    model, tok = tiny
    sampled = LmEvalTask("harness_gsm8k_sampled", TASKS["gsm8k"], [{"question": "2+2?", "answer": "#### 4"}],
                         overrides={"generation_kwargs": {"until": ["Q:"], "do_sample": True, "temperature": 0.7}})
    with pytest.raises(HarnessError, match=r"^lm-eval task harness_gsm8k_sampled samples its generations \(do_sample\); "
                                           r"the native evaluator decodes greedily: set task.evaluator=lm_eval$"):
        lm_eval_requests.score(Scorer(model, tok, CPU, model.config.max_position_embeddings), sampled, 8, 0)
    rolling = LmEvalTask("harness_wikitext", "wikitext/wikitext.yaml", [{"page": "A page of text."}])
    with pytest.raises(HarnessError, match="makes loglikelihood_rolling requests; the native evaluator answers "
                                           "loglikelihood or generate_until ones: set task.evaluator=lm_eval"):
        lm_eval_requests.score(Scorer(model, tok, CPU, model.config.max_position_embeddings), rolling, 8, 0)
