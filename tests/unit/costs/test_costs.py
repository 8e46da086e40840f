"""Cost accounting on tiny-random-llama: stored vs trainable params, the memory split after real
training, the analytic FLOPs, latency merged vs unmerged, the memory cap, and the CLI's columns."""

from __future__ import annotations

import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.core.errors import RunFailed
from harness.costs.flops import flops_metrics, flops_per_token, matmul_params
from harness.costs.footprint import (PeakMemory, extra_prompt_tokens, memory_split, optimizer_state_bytes,
                                     parameter_counts, stored_parameter_count)
from harness.costs.latency import ms_per_token
from harness.store.result_store import ResultStore
from harness.train.batching import batch_stream
from harness.train.loop import StepOptions, train
from methods._core.base import BuildContext
from tests.conftest import run_cli

CPU = torch.device("cpu")
TRAIN_CFG = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')


def _apply(loaded, **options):
    method = methods.build(options)
    torch.manual_seed(0)
    return method, method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))


def _pool():
    torch.manual_seed(1)
    return [(ids, ids) for ids in torch.randint(5, 1000, (8, 12)).tolist()]


def test_stored_equals_trainable_for_lora(tiny_model, tmp_path):
    method, model = _apply(tiny_model(), name="lora", r=4)
    method.save(model, tmp_path)
    assert stored_parameter_count(tmp_path) == parameter_counts(model)[0]


def test_vera_stores_its_shared_projections_too(tiny_model, tmp_path):
    loaded = tiny_model()
    cfg = loaded.model.config
    method, model = _apply(loaded, name="vera", r=16)
    method.save(model, tmp_path)
    # The shared pair spans the largest targeted input (down_proj: intermediate) and output
    # (gate/up: intermediate): A is r x 128 and B is 128 x r here.
    projections = 16 * cfg.intermediate_size + cfg.intermediate_size * 16
    assert stored_parameter_count(tmp_path) == parameter_counts(model)[0] + projections


def test_memory_split_after_real_training(tiny_model):
    method, model = _apply(tiny_model(), name="lora", r=4)
    trainable_tensors = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in trainable_tensors)
    with PeakMemory(CPU) as peak:
        result = train(model, method, batch_stream(_pool(), 4, 0, seed=0), TRAIN_CFG, 1e-3,
                       Budget("x", max_steps=2), CPU, 48.0)
    # AdamW: two fp32 moments per trained number and one fp32 step counter per tensor
    assert result.optimizer_bytes == 2 * 4 * trainable + 4 * len(trainable_tensors)
    split = {m.metric: m.value for m in memory_split(model, result.optimizer_bytes, peak, "cost")}
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers())
    assert split["mem_weights_bytes"] == weights
    assert split["mem_grads_bytes"] == 4 * trainable
    assert split["mem_optimizer_bytes"] == result.optimizer_bytes
    assert 0 <= split["mem_activations_bytes"] <= peak.peak_bytes
    assert peak.peak_bytes >= peak.start_bytes > 0


def test_optimizer_state_of_lisa_covers_only_active_layers(tiny_model):
    method, model = _apply(tiny_model(), name="lisa", n_layers=1, interval=1)
    train(model, method, batch_stream(_pool(), 4, 0, seed=0), TRAIN_CFG, 1e-4, Budget("x", max_steps=2), CPU, 48.0)
    active = [p for p in model.parameters() if p.requires_grad]
    assert optimizer_state_bytes(method.optimizer) == 2 * 4 * sum(p.numel() for p in active) + 4 * len(active)


def test_flops_formula(tiny_model):
    _, model = _apply(tiny_model(), name="lora", r=2)
    trainable, total = parameter_counts(model)
    assert matmul_params(model) == total  # tied embeddings: the table is the output head's matrix
    assert flops_per_token(model, trainable, zeroth_order=False) == 4 * total + 2 * trainable
    assert flops_per_token(model, trainable, zeroth_order=True) == 4 * total
    rows = {m.metric: m.value for m in flops_metrics(model, trainable, False, 1000, 10, 20, 5, "cost")}
    assert rows["train_flops"] == (4 * total + 2 * trainable) * (1000 + 20 * 10)
    assert rows["flops_per_step"] == rows["train_flops"] / 5


def test_untied_input_embeddings_cost_no_flops():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False))
    total = sum(p.numel() for p in model.parameters())
    assert matmul_params(model) == total - 300 * 32


def test_latency_merged_and_unmerged_and_prompt_tokens(tiny_model):
    loaded = tiny_model()
    method, model = _apply(loaded, name="lora", r=4)
    assert extra_prompt_tokens(model) == 0
    unmerged = ms_per_token(model, loaded.tokenizer, CPU, 4)
    method.merge(model)
    merged = ms_per_token(model, loaded.tokenizer, CPU, 4)
    assert unmerged > 0 and merged > 0
    loaded = tiny_model()
    _, prompted = _apply(loaded, name="prompt_tuning", num_virtual_tokens=7)
    assert extra_prompt_tokens(prompted) == 7 and ms_per_token(prompted, loaded.tokenizer, CPU, 4) > 0


def test_memory_cap_is_a_hard_check_on_cuda(monkeypatch):
    """No GPU here: the allocator's peak is the one thing mocked."""
    from harness.train import loop as train_module

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**30)
    capped = Budget("x", max_steps=1, max_memory_gib=2)
    with pytest.raises(RunFailed, match=r"peak memory 3.00 GiB exceeded .*max_memory_gib=2 at step 4"):
        train_module._check_memory_cap(capped, torch.device("cuda"), 4)
    train_module._check_memory_cap(Budget("x", max_steps=1, max_memory_gib=4), torch.device("cuda"), 4)
    train_module._check_memory_cap(capped, CPU, 4)  # CPU: reported, never enforced


@pytest.mark.slow
def test_a_run_reports_every_cost(tmp_path, test_data):
    proc = run_cli(["model=tiny-random-llama", "method=vera", "budget=steps50_mem8gib", "budget.max_steps=2",
                    "task.n_eval=2", "task.max_new_tokens=4", "eval.latency_tokens=3", "forgetting.probes=[]"],
                   tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    run = runs.iloc[0]
    assert run["memory_cap_bytes"] == 8 * 2**30 and bool(run["within_memory_cap"]) == (run["peak_mem_bytes"] <= 8 * 2**30)
    assert run["stored_params"] > run["trainable_params"] > 0  # VeRA also stores its projections
    cost = metrics[metrics["task"] == "cost"].set_index("metric")
    assert set(cost.index) == {"mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_activations_bytes",
                               "train_flops", "flops_per_step", "latency_ms_per_token_unmerged",
                               "latency_ms_per_token_merged", "prompt_extra_tokens", "padding_fraction"}
    assert 0 < cost.loc["padding_fraction", "value"] < 1  # padded batches of GSM8K items of different lengths
    assert cost.loc["flops_per_step", "value"] * 2 == pytest.approx(cost.loc["train_flops", "value"])
    assert cost["metric_version"].str.startswith("cost/").all()
