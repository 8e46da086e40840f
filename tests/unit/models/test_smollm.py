"""Real weights: SmolLM2-135M-Instruct from the packaged GGUF (converted once, cached)."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

import methods
from harness.core.paths import CONF_DIR
from harness.models.loading import load_model
from harness.scoring.cross_entropy import target_cross_entropy
from harness.store.result_store import ResultStore
from methods._core.base import BuildContext
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm():
    cfg = yaml.safe_load((CONF_DIR / "model" / "smollm2-135m.yaml").read_text())
    return lambda: load_model(cfg, CONF_DIR)


def test_converted_model_knows_language(smollm):
    loaded = smollm()
    assert loaded.identity["gguf_sha256"] and loaded.model.config.num_hidden_layers == 30
    pairs = [("Question: What is the capital of France?\nAnswer:", " The capital of France is Paris.")]
    nll, n = target_cross_entropy(loaded.model, loaded.tokenizer, pairs, 1, 128, torch.device("cpu"))[0]
    assert nll / n < 2.0  # a random model scores ~10.8 nats/token on this vocabulary


@pytest.mark.parametrize("name", ["lora", "pissa", "dora"])
def test_init_preserves_the_real_model(smollm, name):
    loaded = smollm()
    ids = loaded.tokenizer("Natalia sold clips to 48 of her friends in April.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = loaded.model(input_ids=ids).logits
    torch.manual_seed(0)
    model = methods.build({"name": name}).apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    with torch.no_grad():
        tuned = model(input_ids=ids).logits
    torch.testing.assert_close(tuned, base, atol=2e-3, rtol=1e-3)


def test_cli_single_run_on_smollm(tmp_path, full_data):
    proc = run_cli(["model=smollm2-135m", "method=lora", "budget=smoke", "train.batch_size=2", "task.n_eval=4",
                    "task.max_new_tokens=48", "forgetting.general_text.n_chunks=2",
                    # the general suite (MMLU + ARC, scored twice) would triple the run; tests/unit/probes/test_forgetting.py runs it
                    "forgetting.probes=[general_text,kl_drift]"], tmp_path,
                   {"HARNESS_DATA_DIR": str(full_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert runs["status"].tolist() == ["finished"] and runs["model"].tolist() == ["smollm2-135m"]
    values = dict(zip(metrics["metric"], metrics["value"]))
    assert values["answer_ce"] < 3.0 and values["general_ce_before"] < 6.0 and values["forgetting_kl"] >= 0
    assert re.search(r"^\[done \w+\] lora smollm2-135m gsm8k smoke seed=0 ", proc.stdout, re.M)
