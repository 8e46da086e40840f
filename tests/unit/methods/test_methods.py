"""Method invariants on a real (random-init) Llama: init equals base, PiSSA reconstructs the base
weights, trainable counts equal their formulas, and every method trains."""

from __future__ import annotations

import pytest
import torch

import methods
from methods._core.base import BuildContext

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _build(loaded, **options):
    method = methods.build(options)
    torch.manual_seed(0)
    model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    return method, model


def _linear_shapes(model, suffixes):
    return [(m.in_features, m.out_features) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in suffixes]


def _inputs():
    torch.manual_seed(1)
    return torch.randint(0, 1000, (2, 12))


@torch.no_grad()
def _logits(model, ids):
    model.eval()
    return model(input_ids=ids).logits


def test_registry_has_first_methods():
    assert {"full", "lora", "pissa", "dora", "ia3", "prompt_tuning"} <= set(methods.names())


@pytest.mark.parametrize("name", ["lora", "dora", "pissa", "ia3"])
def test_output_equals_base_at_init(tiny_model, name):
    loaded = tiny_model()
    ids = _inputs()
    base = _logits(loaded.model, ids)
    _, model = _build(loaded, name=name)
    torch.testing.assert_close(_logits(model, ids), base, atol=1e-4, rtol=1e-4)


def test_pissa_residual_plus_adapter_is_base_weight(tiny_model):
    loaded = tiny_model()
    originals = {n: m.weight.detach().clone() for n, m in loaded.model.named_modules() if n.endswith("q_proj")}
    _, model = _build(loaded, name="pissa", r=4)
    checked = 0
    for name, module in model.named_modules():
        if name.endswith("q_proj") and hasattr(module, "lora_A"):
            base_name = name.replace("base_model.model.", "")
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            rebuilt = module.base_layer.weight + module.scaling["default"] * (b @ a)
            torch.testing.assert_close(rebuilt, originals[base_name], atol=1e-5, rtol=1e-5)
            # and the residual really is a different matrix: the principal part moved out of it
            assert (module.base_layer.weight - originals[base_name]).abs().max() > 1e-3
            checked += 1
    assert checked == 2


@pytest.mark.parametrize("r", [1, 4, 8])
def test_lora_trainable_count_formula(tiny_model, r):
    loaded = tiny_model()
    shapes = _linear_shapes(loaded.model, ALL_LINEAR)
    _, model = _build(loaded, name="lora", r=r)
    expected = sum(r * (i + o) for i, o in shapes)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def test_dora_trainable_count_adds_one_magnitude_per_output(tiny_model):
    loaded = tiny_model()
    shapes = _linear_shapes(loaded.model, ALL_LINEAR)
    _, model = _build(loaded, name="dora", r=4)
    expected = sum(4 * (i + o) + o for i, o in shapes)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def test_ia3_trainable_count(tiny_model):
    loaded = tiny_model()
    kv = _linear_shapes(loaded.model, ["k_proj", "v_proj"])
    down = _linear_shapes(loaded.model, ["down_proj"])
    _, model = _build(loaded, name="ia3")
    expected = sum(o for _, o in kv) + sum(i for i, _ in down)  # feed-forward rescales the input
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def test_prompt_tuning_trainable_count(tiny_model):
    loaded = tiny_model()
    hidden = loaded.model.config.hidden_size
    _, model = _build(loaded, name="prompt_tuning", num_virtual_tokens=7)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 7 * hidden


def test_full_trains_everything(tiny_model):
    loaded = tiny_model()
    total = sum(p.numel() for p in loaded.model.parameters())
    _, model = _build(loaded, name="full")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == total


@pytest.mark.parametrize("name", ["full", "lora", "pissa", "dora", "ia3", "prompt_tuning"])
def test_loss_falls_when_training(tiny_model, name):
    from harness.budget.spec import Budget
    from harness.train.loop import StepOptions, train

    loaded = tiny_model()
    method, model = _build(loaded, name=name)
    torch.manual_seed(0)
    ids = torch.randint(0, 500, (4, 16))
    batch = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    before = float(model(**batch).loss)
    cfg = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')
    lr = {"full": 1e-3, "prompt_tuning": 3e-1, "ia3": 3e-1}.get(name, 1e-2)
    train(model, method, iter(lambda: batch, None), cfg, lr, Budget("t", max_steps=15), torch.device("cpu"), 64.0)
    after = float(model(**batch).loss)
    assert after < before - 0.05, (before, after)


@pytest.mark.parametrize("options,needle", [
    ({"name": "lora", "r": -1}, "method.r=-1"),
    ({"name": "lora", "rank": 4}, "no option rank"),
    ({"name": "nope"}, "unknown method 'nope'"),
])
def test_bad_options_are_one_line_errors(options, needle):
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError) as err:
        methods.build(options)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_target_module_names_the_option(tiny_model):
    from harness.core.errors import HarnessError

    loaded = tiny_model()
    with pytest.raises(HarnessError, match="method.target_modules: attn_c"):
        _build(loaded, name="lora", target_modules=["attn_c"])


@pytest.mark.parametrize("name", ["lora", "pissa", "dora", "ia3"])
def test_merged_and_unmerged_outputs_agree(tiny_model, name):
    loaded = tiny_model()
    method, model = _build(loaded, name=name)
    assert_merge_keeps_outputs(method, model, noise=0.1)


def assert_merge_keeps_outputs(method, model, noise: float) -> None:
    """Move the trainable weights away from init (so the merge has something to fold), then
    check that merging leaves the model's outputs unchanged."""
    assert method.mergeable
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * noise)
    ids = _inputs()
    unmerged = _logits(model, ids)
    method.merge(model)
    torch.testing.assert_close(_logits(model, ids), unmerged, atol=1e-4, rtol=1e-4)
