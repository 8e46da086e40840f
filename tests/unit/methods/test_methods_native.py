"""The methods implemented here (backend "native"), on a real (random-init) 2-layer Llama: each
trains, counts exactly the parameters its formula says, keeps its own invariant (starts at the
base, leaves unselected weights untouched, restores perturbed weights, masks small gradients,
re-draws its layers on schedule), merges without changing the function, saves only what it
trained, and rejects impossible options with one line."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from safetensors.torch import load_file

import methods
from harness.budget.spec import Budget
from harness.core.errors import HarnessError
from harness.train.loop import StepOptions, train
from methods._core.base import trainable_parameter_count
from methods._core.native import ColumnBlockLinear, decoder_layers
from methods.mezo import directions
from tests.unit.methods.test_methods import (
    ALL_LINEAR,
    _build,
    _inputs,
    _linear_shapes,
    _logits,
    assert_merge_keeps_outputs,
)

TRAIN_CFG = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')

# Options that keep every method small and valid on the test model (sizes 32, 64 and 128).
SMALL = {
    "bitfit": {},
    "sorsa": {"r": 4},
    "lisa": {"n_layers": 1, "interval": 5},
    "s2ft": {"head_ratio": 0.25, "channel_ratio": 0.25},
    "paca": {"r": 8, "alpha": 8.0},
    "hft": {},
    "gmt": {},
    "mezo": {"mode": "lora", "eps": 1e-2, "target_modules": ALL_LINEAR},
    "series_adapter": {"bottleneck": 8},
    "parallel_adapter": {"bottleneck": 8},
    "mola": {"r": 4},
}
NAMES = sorted(SMALL)
WRAPPING = ["bitfit", "mola", "paca", "parallel_adapter", "s2ft", "series_adapter", "sorsa"]
# Learning rates that move the random model visibly within a few steps.
LR = {"bitfit": 3e-2, "series_adapter": 3e-2, "lisa": 1e-3, "hft": 1e-3, "gmt": 1e-3, "mezo": 5e-2}
STEPS = {"mezo": 50}  # one random direction per step: zeroth-order progress is slow


@pytest.fixture(scope="module")
def fresh(tiny_model):
    """A new copy of the test model per call: loading once and copying is much faster than loading."""
    loaded = tiny_model()
    return lambda: dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))


def _small(loaded, name, **overrides):
    return _build(loaded, name=name, **{**SMALL[name], **overrides})


def _batch():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 500, (4, 16), generator=gen)
    return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}


def _train(method, model, batch, lr, steps):
    return train(model, method, iter(lambda: batch, None), TRAIN_CFG, lr, Budget("t", max_steps=steps),
                 torch.device("cpu"), 64.0)


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_registry_has_the_native_methods():
    assert set(NAMES) <= set(methods.names())
    assert all(methods.get(n).backend == "native" for n in NAMES)


# -- (a) every method trains ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_loss_falls_when_training(fresh, name):
    method, model = _small(fresh(), name)
    batch = _batch()
    with torch.no_grad():
        before = float(model(**batch).loss)
    _train(method, model, batch, LR.get(name, 1e-2), STEPS.get(name, 6))
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert after < before - 0.05, (before, after)


# -- (b) trainable counts equal their formulas ----------------------------------------------------
def _layer_size(model):
    return sum(p.numel() for p in decoder_layers(model)[0].parameters())


COUNT_FORMULAS = {
    "bitfit": lambda m, c: sum(o for _, o in _linear_shapes(m, ALL_LINEAR)),
    "sorsa": lambda m, c: sum(4 * (i + o + 1) for i, o in _linear_shapes(m, ALL_LINEAR)),
    # everything outside the decoder layers, plus one of them
    "lisa": lambda m, c: sum(p.numel() for p in m.parameters()) - (c.num_hidden_layers - 1) * _layer_size(m),
    # one of 4 heads (head_dim 16) into hidden 64, and 32 of 128 channels into hidden 64, in each layer
    "s2ft": lambda m, c: c.num_hidden_layers * (1 * 16 * 64 + 32 * 64),
    "paca": lambda m, c: sum(8 * o for _, o in _linear_shapes(m, ALL_LINEAR)),
    "gmt": lambda m, c: sum(p.numel() for p in m.parameters()),
    "mezo": lambda m, c: sum(8 * (i + o) for i, o in _linear_shapes(m, ALL_LINEAR)),
    "series_adapter": lambda m, c: sum(2 * 8 * o for _, o in _linear_shapes(m, ["o_proj", "down_proj"])),
    "parallel_adapter": lambda m, c: sum(8 * (i + o) for i, o in _linear_shapes(m, ["v_proj", "down_proj"])),
}


@pytest.mark.parametrize("name", sorted(COUNT_FORMULAS))
def test_trainable_count_formula(fresh, name):
    loaded = fresh()
    expected = COUNT_FORMULAS[name](loaded.model, loaded.model.config)
    _, model = _small(loaded, name)
    assert trainable_parameter_count(model) == expected


def test_mezo_full_mode_perturbs_every_weight(fresh):
    loaded = fresh()
    total = sum(p.numel() for p in loaded.model.parameters())
    _, model = _build(loaded, name="mezo")
    assert trainable_parameter_count(model) == total


def test_mola_count_follows_the_layer_allocation(fresh):
    loaded = fresh()
    # groups (2, 4, 6, 8) over 2 layers: layer 0 is in the first quarter, layer 1 in the third
    experts = {0: 2, 1: 6}
    expected = sum(experts[i] * (4 * (m.in_features + m.out_features) + m.in_features)
                   for i, layer in enumerate(decoder_layers(loaded.model))
                   for m in layer.modules() if isinstance(m, torch.nn.Linear))
    _, model = _small(loaded, "mola")
    assert trainable_parameter_count(model) == expected


def test_hft_trains_half_of_each_category_per_layer(fresh):
    method, model = _small(fresh(), "hft")
    categories = [c.split() for c in method.config.categories]
    for i, layer in enumerate(decoder_layers(model)):
        trained = [[n for n in names if layer.get_submodule(n).weight.requires_grad] for names in categories]
        assert [len(t) for t in trained] == [2, 1 + i % 2, 1]  # attention 2 of 4, FFN 1 or 2 of 3, norms 1 of 2
        assert sorted(n for t in trained for n in t) == method.chosen[i]
    expected = sum(p.numel() for i, layer in enumerate(decoder_layers(model))
                   for n in method.chosen[i] for p in layer.get_submodule(n).parameters())
    assert trainable_parameter_count(model) == expected


# -- (c) each method's own invariant --------------------------------------------------------------
@pytest.mark.parametrize("name", WRAPPING)
def test_output_equals_base_at_init(fresh, name):
    loaded = fresh()
    ids = _inputs()
    base = _logits(loaded.model, ids)
    _, model = _small(loaded, name)
    torch.testing.assert_close(_logits(model, ids), base, atol=1e-5, rtol=1e-5)


def test_sorsa_residual_plus_principal_is_base_weight(fresh):
    from methods.sorsa import SORSALinear

    loaded = fresh()
    originals = {n: m.weight.detach().clone() for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear)}
    _, model = _small(loaded, "sorsa")
    wrapped = {n: m for n, m in model.named_modules() if isinstance(m, SORSALinear)}
    assert len(wrapped) == 2 * len(ALL_LINEAR)
    for name, module in wrapped.items():
        torch.testing.assert_close(module.base.weight + module.principal(), originals[name], atol=1e-5, rtol=1e-5)
        # the residual really lost its principal part
        assert (module.base.weight - originals[name]).abs().max() > 1e-3


def test_sorsa_regulariser_is_zero_at_init_and_grows_off_orthonormality(fresh):
    from methods.sorsa import SORSALinear

    method, model = _small(fresh(), "sorsa", gamma=0.5)
    assert float(method.regularization(model).detach()) < 1e-4
    first = next(m for m in model.modules() if isinstance(m, SORSALinear))
    with torch.no_grad():
        first.u.mul_(2.0)  # columns of norm 2: ||U^T U - I||_F = 3 * sqrt(r) for this one matrix
    penalty = method.regularization(model)
    n_matrices = 2 * 2 * len(ALL_LINEAR)  # U and V of every adapted layer
    assert float(penalty.detach()) == pytest.approx(0.5 * 3 * 2 / n_matrices, rel=1e-3)
    penalty.backward()
    assert first.u.grad.abs().sum() > 0
    assert methods.build({"name": "sorsa", "gamma": 0.0}).regularization(model) is None


def test_sorsa_rank_larger_than_a_layer_is_a_one_line_error(fresh):
    with pytest.raises(HarnessError, match=r"method.r=64 is invalid for this model"):
        _build(fresh(), name="sorsa", r=64)


def test_mezo_restores_perturbed_weights_and_moves_them_only_on_step(fresh):
    method, model = _build(fresh(), name="mezo", eps=1e-3)
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    method.perturb(params, 123, 1e-3)
    assert any(not torch.equal(p, b) for p, b in zip(params, before))
    method.perturb(params, 123, -2e-3)
    method.perturb(params, 123, 1e-3)
    for p, b in zip(params, before):
        torch.testing.assert_close(p, b, atol=1e-6, rtol=0)

    optimizer = method.build_optimizer(model, 1e-3)
    loss = method.training_step(model, _batch())
    assert not loss.requires_grad  # no graph: forward passes only
    for p, b in zip(params, before):
        torch.testing.assert_close(p, b, atol=1e-6, rtol=0)
        assert p.grad is None  # no gradient buffer: MeZO trains in the memory of inference
    (seed, projected), = optimizer.pending
    moved_by = [-1e-3 * projected * z for z in directions(params, seed)]
    optimizer.step()
    for p, b, delta in zip(params, before, moved_by):
        torch.testing.assert_close(p - b, delta, atol=1e-6, rtol=0)
    assert any((p - b).abs().max() > 0 for p, b in zip(params, before))


def test_mezo_update_follows_a_direction_regenerated_from_the_step_seed(fresh):
    method, model = _build(fresh(), name="mezo", mode="lora")
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = method.build_optimizer(model, 1e-2)
    method.training_step(model, _batch())
    seed_generator = torch.Generator().manual_seed(0)  # the method's seed generator, replayed
    seed = int(torch.randint(2**62, (1,), generator=seed_generator))
    assert optimizer.pending[0][0] == seed
    optimizer.step()
    zs = list(directions(params, seed))
    ratios = torch.cat([((p - b) / z).flatten() for p, b, z in zip(params, before, zs)])
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios), atol=1e-4, rtol=1e-3)
    assert optimizer.pending == []


def _active_layers(model):
    """Indices of the decoder layers that train; every other layer must be wholly frozen."""
    layers = decoder_layers(model)
    trained = [i for i, layer in enumerate(layers) if all(p.requires_grad for p in layer.parameters())]
    frozen = [i for i, layer in enumerate(layers) if not any(p.requires_grad for p in layer.parameters())]
    assert len(trained) + len(frozen) == len(layers)
    return trained


def test_lisa_trains_k_layers_and_redraws_every_interval(fresh):
    method, model = _small(fresh(), "lisa", interval=3)
    assert model.model.embed_tokens.weight.requires_grad and model.model.norm.weight.requires_grad
    schedule = []
    for step in range(30):
        current = _active_layers(model)
        assert len(current) == 1
        method.on_step(model, step)
        if step % 3:
            assert _active_layers(model) == current  # no redraw inside an interval
        else:
            schedule += _active_layers(model)
    assert set(schedule) == {0, 1}  # redraws do happen and reach every layer

    replay, replay_model = _small(fresh(), "lisa", interval=3)
    replayed = []
    for step in range(0, 30, 3):
        replay.on_step(replay_model, step)
        replayed += _active_layers(replay_model)
    assert replayed == schedule  # the config's seed makes the schedule reproducible


def test_lisa_frozen_layer_does_not_move_and_loses_its_optimizer_state(fresh):
    method, model = _small(fresh(), "lisa", interval=2)
    [first] = _active_layers(model)
    before = _snapshot(model)
    _train(method, model, _batch(), 1e-3, 2)  # exactly one interval: the same layer active throughout
    layers = decoder_layers(model)
    frozen = 1 - first
    for name, p in layers[frozen].named_parameters():
        assert torch.equal(p, before[f"model.layers.{frozen}.{name}"]), name
    assert any(not torch.equal(p, before[f"model.layers.{first}.{n}"]) for n, p in layers[first].named_parameters())
    assert layers[first].self_attn.q_proj.weight in method.optimizer.state
    for step in range(2, 200, 2):
        method.on_step(model, step)
        if _active_layers(model) != [first]:
            break
    assert _active_layers(model) == [frozen]
    assert all(p not in method.optimizer.state for p in layers[first].parameters())


def test_gmt_masks_small_gradients_before_the_step(fresh):
    method, model = _small(fresh(), "gmt", mask_ratio=0.3)
    optimizer = method.build_optimizer(model, 1e-3)
    model(**_batch()).loss.backward()
    grads = {p: p.grad.clone() for p in model.parameters()}
    before = {p: p.detach().clone() for p in model.parameters()}
    optimizer.step()
    for p, g in grads.items():
        k = int(0.3 * g.numel())
        threshold = g.abs().flatten().kthvalue(k).values
        masked = g.abs() <= threshold
        assert masked.sum() >= k
        assert torch.all(p.grad[masked] == 0)
        assert torch.equal(p.grad[~masked], g[~masked])
        assert torch.equal(p[masked], before[p][masked])  # AdamW's first step moves nothing it got 0 for


@pytest.mark.parametrize("name", ["paca", "s2ft"])
def test_columns_outside_the_selection_never_change(fresh, name):
    loaded = fresh()
    before = _snapshot(loaded.model)
    method, model = _small(loaded, name)
    selected = {n: m.columns.clone() for n, m in model.named_modules() if isinstance(m, ColumnBlockLinear)}
    assert selected
    _train(method, model, _batch(), 1e-2, 3)
    method.merge(model)
    after = dict(model.named_parameters())
    assert set(after) == set(before)  # merging gives back the plain model
    for name_, p in after.items():
        module = name_.removesuffix(".weight")
        if module not in selected:
            assert torch.equal(p, before[name_]), name_
            continue
        keep = torch.ones(p.shape[1], dtype=torch.bool)
        keep[selected[module]] = False
        assert torch.equal(p[:, keep], before[name_][:, keep]), name_
        assert not torch.equal(p[:, ~keep], before[name_][:, ~keep]), name_


def test_s2ft_selects_whole_heads_and_channels(fresh):
    _, model = _small(fresh(), "s2ft")
    for layer in decoder_layers(model):
        heads = layer.self_attn.o_proj.columns
        assert len(heads) == 16 and heads.max() - heads.min() == 15 and heads.min() % 16 == 0
        assert len(layer.mlp.down_proj.columns) == 32


def test_hft_blocks_outside_the_selection_never_change(fresh):
    loaded = fresh()
    before = _snapshot(loaded.model)
    method, model = _small(loaded, "hft")
    _train(method, model, _batch(), 1e-3, 3)
    chosen = {f"model.layers.{i}.{n}.weight" for i, names in enumerate(method.chosen) for n in names}
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (name in chosen), name


# -- (d) merging keeps the function --------------------------------------------------------------
MERGING = ["mezo", "paca", "s2ft", "sorsa"]


@pytest.mark.parametrize("name", MERGING)
def test_merged_and_unmerged_outputs_agree(fresh, name):
    method, model = _small(fresh(), name)
    assert_merge_keeps_outputs(method, model, noise=0.05)


def test_unmergeable_methods_say_so():
    assert not any(methods.get(n).mergeable for n in ["mola", "parallel_adapter", "series_adapter"])


# -- saving ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bitfit", "hft", "lisa", "mola", "paca", "parallel_adapter", "s2ft",
                                  "series_adapter", "sorsa"])
def test_save_writes_only_the_trained_tensors(fresh, tmp_path, name):
    method, model = _small(fresh(), name)
    written = method.save(model, tmp_path)
    files = list(tmp_path.iterdir())
    assert written == sum(f.stat().st_size for f in files)
    tensors = load_file(str(files[0]))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in tensors if not n.endswith(".columns")} == trained
    assert sum(t.numel() for n, t in tensors.items() if n in trained) == trainable_parameter_count(model)


# -- impossible options ----------------------------------------------------------------------------
@pytest.mark.parametrize("options,needle", [
    ({"name": "sorsa", "gamma": -1.0}, "method.gamma=-1.0"),
    ({"name": "lisa", "interval": 0}, "method.interval=0"),
    ({"name": "s2ft", "head_ratio": 0.0, "channel_ratio": 0.0}, "method.channel_ratio=0.0"),
    ({"name": "s2ft", "channel_ratio": 1.5}, "method.channel_ratio=1.5"),
    ({"name": "paca", "r": 0}, "method.r=0"),
    ({"name": "hft", "categories": ["self_attn.q_proj"]}, "method.categories="),
    ({"name": "gmt", "mask_ratio": 1.0}, "method.mask_ratio=1.0"),
    ({"name": "mezo", "mode": "adam"}, "method.mode='adam'"),
    ({"name": "series_adapter", "activation": "swish"}, "method.activation='swish'"),
    ({"name": "parallel_adapter", "scaling": 0.0}, "method.scaling=0.0"),
    ({"name": "mola", "experts_per_group": [2, 4], "top_k": 3}, "method.top_k=3"),
])
def test_bad_options_are_one_line_errors(options, needle):
    with pytest.raises(HarnessError) as err:
        methods.build(options)
    assert needle in str(err.value) and "\n" not in str(err.value)

