"""The methods that delegate to peft, on a real (random-init) 2-layer Llama: each trains, counts
exactly the parameters its formula says, keeps its own invariant (starts at the base, A frozen,
B's learning rate, rank pruning), merges without changing the function, and rejects impossible
options with one line."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.core.errors import HarnessError
from harness.train.loop import StepOptions, train
from methods._core.base import BuildContext, trainable_parameter_count
from tests.unit.methods.test_methods import ALL_LINEAR, _inputs, _linear_shapes, _logits

TRAIN_CFG = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')

# Options that keep every method small and valid on the test model (sizes 32, 64 and 128).
SMALL = {
    "rslora": {"r": 4},
    "olora": {"r": 4},
    "lora_plus": {"r": 4},
    "lora_fa": {"r": 4},
    "vera": {"r": 16},
    "loha": {"r": 4, "alpha": 4},
    "lokr": {"r": 2, "alpha": 2},
    "oft": {"block_size": 8},
    "boft": {"block_size": 4, "n_butterfly_factor": 1},  # m > 1 needs a GPU (see below)
    "hra": {"r": 4},
    "miss": {"r": 8},
    "fourierft": {"n_frequency": 64, "scaling": 100.0},
    "vblora": {"r": 2, "num_vectors": 32, "vector_length": 16},
    "randlora": {"r": 16, "alpha": 32.0},
    "adalora": {"r": 2, "init_r": 4, "total_step": 10},
    "ln_tuning": {},
    "prefix_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4},
    "corda": {"r": 4, "alpha": 4.0, "calibration_batches": 2},
    "lora_ga": {"r": 4, "calibration_batches": 2},
}
NAMES = sorted(SMALL)
STARTS_AT_BASE = sorted(set(NAMES) - {"vblora", "prefix_tuning", "p_tuning"})
NOT_MERGEABLE = {"prefix_tuning", "p_tuning"}  # their virtual tokens cannot be folded into weights
# Learning rates that move the random model visibly within a few steps.
LR = {"vblora": 1e-1, "vera": 5e-2, "fourierft": 5e-2, "ln_tuning": 5e-2, "prefix_tuning": 5e-2}


@pytest.fixture(scope="module")
def fresh(tiny_model):
    """A fresh copy of the test model per call: copying is much cheaper than building it again."""
    loaded = tiny_model()
    return lambda: dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))


def _batches():
    """An endless calibration stream; the second row is padded, as real batches are."""
    gen = torch.Generator().manual_seed(2)
    while True:
        ids = torch.randint(0, 500, (2, 12), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0
        yield {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _build(loaded, name, **options):
    method = methods.build({"name": name, **SMALL.get(name, {}), **options})
    if method.needs_calibration:
        method.calibrate(loaded.model, _batches())
    torch.manual_seed(0)
    return method, method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))


def _shapes(model, suffixes=ALL_LINEAR):
    return _linear_shapes(model, suffixes)


def _fixed_batch():
    torch.manual_seed(0)
    ids = torch.randint(0, 500, (2, 8))
    return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}


def _train(method, model, batch, lr, steps):
    budget = Budget("t", max_steps=steps)
    train(model, method, iter(lambda: batch, None), TRAIN_CFG, lr, budget, torch.device("cpu"), 64.0)


def _adapter_params(model, key):
    return {n: p for n, p in model.named_parameters() if key in n}


# -- (a)-(d) for every method: count, start, training, merge -------------------------------------
def _near_square(n):
    """LoKr's default split of a size into factors a <= b, a * b = n, as close to square as possible."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def _lokr_layer(i, o, r):
    (a, b), (c, d) = _near_square(o), _near_square(i)
    w2 = b * d if r >= max(b, d) / 2 else r * (b + d)  # W2 dense, or factored through rank r
    return a * c + w2  # W1 is always dense


def _lstm(inp, h):
    return 4 * h * (inp + h) + 8 * h  # gates' input and recurrent weights, two bias vectors


def _expected(name, model, cfg):
    shapes = _shapes(model)
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (hidden // cfg.num_attention_heads)
    formulas = {
        "rslora": lambda: sum(4 * (i + o) for i, o in shapes),
        "olora": lambda: sum(4 * (i + o) for i, o in shapes),
        "lora_plus": lambda: sum(4 * (i + o) for i, o in shapes),
        "corda": lambda: sum(4 * (i + o) for i, o in shapes),
        "lora_ga": lambda: sum(4 * (i + o) for i, o in shapes),
        "lora_fa": lambda: sum(4 * o for i, o in shapes),  # B only
        "vera": lambda: sum(o + 16 for i, o in shapes),  # lambda_b (out) + lambda_d (r)
        "loha": lambda: sum(2 * 4 * (i + o) for i, o in shapes),  # two rank-4 pairs
        "lokr": lambda: sum(_lokr_layer(i, o, 2) for i, o in shapes),
        "oft": lambda: sum(i // 8 * (8 * 7 // 2) for i, o in shapes),  # in/b skew blocks, b(b-1)/2 each
        "boft": lambda: sum((i // 4) * 4 * 4 + o for i, o in shapes),  # m = 1 factor of full b x b blocks + out scales
        "hra": lambda: sum(4 * i for i, o in shapes),  # r Householder vectors
        "miss": lambda: sum(8 * o for i, o in shapes),  # one r x out shard
        "fourierft": lambda: 64 * len(_shapes(model, ["q_proj", "v_proj"])),
        "vblora": lambda: 32 * 16 + sum(2 * 32 * (i + o) // 16 for i, o in shapes),  # bank + logits
        "randlora": lambda: sum(math.ceil(min(i, o) / 16) * (16 + min(i, o)) for i, o in shapes),
        "adalora": lambda: sum(4 * (i + o) + 4 for i, o in shapes),  # P, Q and the init_r values E
        "ln_tuning": lambda: hidden * (2 * layers + 1),  # two RMSNorms per layer + the final one
        "prefix_tuning": lambda: 4 * layers * 2 * kv,  # a key and a value per token per layer
        "p_tuning": lambda: 4 * hidden + 2 * _lstm(hidden, hidden) + 2 * _lstm(2 * hidden, hidden)
        + (2 * hidden) * (2 * hidden) + 2 * hidden + (2 * hidden) * hidden + hidden,  # 2x2 biLSTM + MLP head
    }
    return formulas[name]()


@pytest.mark.parametrize("name", NAMES)
def test_count_start_training_and_merge(fresh, name):
    """One build per method: (b) the trainable count is the formula's, (c) the output equals the
    base model's where the method promises it, (a) the loss falls on a fixed batch, (d) merging
    the trained adapter leaves the outputs unchanged."""
    loaded = fresh()
    expected = _expected(name, loaded.model, loaded.model.config)
    ids = _inputs()
    base = _logits(loaded.model, ids)
    method, model = _build(loaded, name)
    assert trainable_parameter_count(model) == expected
    if name in STARTS_AT_BASE:
        torch.testing.assert_close(_logits(model, ids), base, atol=1e-4, rtol=1e-4)

    batch = _fixed_batch()
    before = float(model(**batch).loss)
    _train(method, model, batch, LR.get(name, 1e-2), steps=8)
    after = float(model(**batch).loss)
    assert after < before - 0.05, (before, after)

    assert method.mergeable == (name not in NOT_MERGEABLE)
    if method.mergeable:
        trained = _logits(model, ids)
        method.merge(model)
        torch.testing.assert_close(_logits(model, ids), trained, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,options,formula", [
    ("miss", {"mode": "bat"}, lambda shapes, h, kv, L: sum((o // 8) * 8 * 8 for i, o in shapes)),  # r x r blocks
    ("prefix_tuning", {"projection": True},  # embedding, then a tanh MLP kv -> kv -> 2 L kv
     lambda shapes, h, kv, L: 4 * kv + (kv * kv + kv) + (kv * 2 * L * kv + 2 * L * kv)),
    ("p_tuning", {"encoder": "MLP"}, lambda shapes, h, kv, L: 4 * h + 3 * (h * h + h)),  # embedding + 3 linears
])
def test_trainable_count_of_variants(fresh, name, options, formula):
    loaded = fresh()
    cfg = loaded.model.config
    kv = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    expected = formula(_shapes(loaded.model), cfg.hidden_size, kv, cfg.num_hidden_layers)
    _, model = _build(loaded, name, **options)
    assert trainable_parameter_count(model) == expected


# -- (c) each method's own invariant ---------------------------------------------------------------
def test_miss_bat_mode_trains_block_affine_tensors_from_the_base(fresh):
    loaded = fresh()
    ids = _inputs()
    base = _logits(loaded.model, ids)
    _, model = _build(loaded, "miss", mode="bat")
    blocks = list(_adapter_params(model, "miss_block").values())
    assert blocks and all(b.dim() == 3 and b.shape[1:] == (8, 8) for b in blocks)
    torch.testing.assert_close(_logits(model, ids), base, atol=1e-4, rtol=1e-4)


def test_lora_fa_never_updates_a(fresh):
    method, model = _build(fresh(), "lora_fa")
    a_before = {n: p.detach().clone() for n, p in _adapter_params(model, "lora_A").items()}
    b_before = {n: p.detach().clone() for n, p in _adapter_params(model, "lora_B").items()}
    _train(method, model, _fixed_batch(), 1e-2, steps=3)
    for n, p in _adapter_params(model, "lora_A").items():
        assert not p.requires_grad and torch.equal(p, a_before[n])
    assert any(not torch.equal(p, b_before[n]) for n, p in _adapter_params(model, "lora_B").items())


def test_lora_plus_b_learns_ratio_times_faster(fresh):
    method, model = _build(fresh(), "lora_plus", lr_ratio=8.0)
    optimizer = method.build_optimizer(model, 1e-3)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert lr_of[id(p)] == pytest.approx(8e-3 if "lora_B" in n else 1e-3), n


def test_adalora_prunes_to_the_target_rank(fresh):
    method, model = _build(fresh(), "adalora", total_step=8)  # init_r 4 -> average rank 2
    _train(method, model, _fixed_batch(), 1e-2, steps=8)
    values = list(_adapter_params(model, "lora_E").values())
    assert sum(int((e != 0).sum()) for e in values) == 2 * len(values)


def test_corda_both_modes_start_at_the_base_and_ipm_adapts_larger_components(fresh):
    ids = _inputs()

    def adapter_norms(mode):
        loaded = fresh()
        base = _logits(loaded.model, ids)
        _, model = _build(loaded, "corda", mode=mode)
        torch.testing.assert_close(_logits(model, ids), base, atol=1e-4, rtol=1e-4)
        return [float((m.lora_B["default"].weight @ m.lora_A["default"].weight).norm())
                for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]

    ipm, kpm = adapter_norms("ipm"), adapter_norms("kpm")
    assert len(ipm) == len(kpm) > 0
    assert all(big > small for big, small in zip(ipm, kpm))


def test_lora_ga_starts_from_the_gradient_not_from_zero(fresh):
    _, model = _build(fresh(), "lora_ga")
    b = list(_adapter_params(model, "lora_B").values())
    assert b and all(float(w.abs().max()) > 0 for w in b)  # plain LoRA would start with B = 0


def test_qlora_without_cuda_is_a_one_line_error(fresh):
    loaded = fresh()
    method = methods.build({"name": "qlora"})
    with pytest.raises(HarnessError) as err:
        method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    assert "CUDA" in str(err.value) and "bitsandbytes" in str(err.value) and "\n" not in str(err.value)
    assert not method.mergeable


# -- bad options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("options,needle", [
    ({"name": "rslora", "r": 0}, "method.r=0"),
    ({"name": "lora_plus", "lr_ratio": 0.5}, "method.lr_ratio=0.5"),
    ({"name": "vera", "r": 0}, "method.r=0"),
    ({"name": "loha", "r": 0}, "method.r=0"),
    ({"name": "lokr", "decompose_factor": 0}, "method.decompose_factor=0"),
    ({"name": "oft", "block_size": 1}, "method.block_size=1"),
    ({"name": "boft", "n_butterfly_factor": 0}, "method.n_butterfly_factor=0"),
    ({"name": "hra", "r": 3}, "method.r=3"),
    ({"name": "miss", "mode": "bone"}, "method.mode='bone'"),
    ({"name": "fourierft", "n_frequency": 0}, "method.n_frequency=0"),
    ({"name": "vblora", "topk": 0}, "method.topk=0"),
    ({"name": "randlora", "r": 0}, "method.r=0"),
    ({"name": "adalora", "r": 8, "init_r": 4}, "method.init_r=4"),
    ({"name": "adalora", "warmup_fraction": 0.5, "final_fraction": 0.5}, "method.final_fraction=0.5"),
    ({"name": "prefix_tuning", "num_virtual_tokens": 0}, "method.num_virtual_tokens=0"),
    ({"name": "p_tuning", "encoder": "GRU"}, "method.encoder='GRU'"),
    ({"name": "corda", "mode": "xpm"}, "method.mode='xpm'"),
    ({"name": "lora_ga", "calibration_batches": 0}, "method.calibration_batches=0"),
    ({"name": "qlora", "quant_type": "int4"}, "method.quant_type='int4'"),
])
def test_bad_options_are_one_line_errors(options, needle):
    with pytest.raises(HarnessError) as err:
        methods.build(options)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name,options,needle", [
    ("oft", {"block_size": 24}, "method.block_size=24 does not divide"),
    ("boft", {"block_size": 24, "n_butterfly_factor": 1}, "= 24 does not divide"),
    ("miss", {"mode": "bat", "r": 24}, "method.r=24 (mode bat) does not divide"),
    ("vblora", {"vector_length": 48}, "method.vector_length=48 does not divide"),
    ("boft", {"n_butterfly_factor": 2}, "method.n_butterfly_factor=2 needs peft's BOFT CUDA extension"),
])
def test_options_that_do_not_fit_the_model_or_device_are_one_line_errors(fresh, name, options, needle):
    with pytest.raises(HarnessError) as err:
        _build(fresh(), name, **options)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["pissa", "olora", "corda", "lora_ga"])
def test_saved_adapter_restores_the_tuned_model_on_the_original_base(fresh, tmp_path, name):
    """These methods rewrite base weights at init: what they save must be relative to the original base."""
    from peft import PeftModel

    method, model = _build(fresh(), name, r=4)
    with torch.no_grad():  # stand-in for training: move every adapter weight away from its init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    ids = _inputs()
    tuned = _logits(model, ids)
    assert method.save(model, tmp_path / "adapter") > 0
    restored = PeftModel.from_pretrained(fresh().model, tmp_path / "adapter")
    torch.testing.assert_close(_logits(restored, ids), tuned, atol=1e-4, rtol=1e-4)

