"""A base model's weight footprint before loading (harness/models/size.py): exact parameter
counts from the config alone (the published counts of the real architectures), and which bases fit
one device, the rule `train.strategy=auto` shards by. The GPU's memory is mocked (no GPU here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import yaml

import methods
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.distributed.parallel import resolve_strategy
from harness.distributed.world import World
from harness.models import size
from harness.models.spec import ModelSpec

GIB = 2**30


def _spec(name: str, **changes) -> ModelSpec:
    return ModelSpec.of({**yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text()), **changes})


@pytest.mark.parametrize("name,count", [("qwen2.5-0.5b-random", 494_032_768), ("llama-3.2-1b-random", 1_235_814_400)])
def test_counts_are_the_published_ones_without_loading_weights(name, count):
    assert size.parameter_count(_spec(name), CONF_DIR) == count  # Qwen2.5-0.5B's and Llama-3.2-1B's model cards
    assert size.weight_bytes(_spec(name), "bf16", CONF_DIR) == 2 * count
    assert size.weight_bytes(_spec(name, load_in_8bit=True), "bf16", CONF_DIR) == count


def test_the_count_is_the_loaded_models(tiny_model):
    loaded = tiny_model()
    assert size.parameter_count(_spec("tiny-random-llama"), CONF_DIR) == sum(p.numel() for p in loaded.model.parameters())


def test_an_unknown_size_decides_nothing():
    assert size.parameter_count(_spec("smollm2-135m"), CONF_DIR) is None  # a packaged GGUF
    assert size.fits_one_device(None, 80 * GIB) and size.fits_one_device(10 * GIB, None)
    assert size.too_large_for_one_device(_spec("llama-3.2-1b-random"), "fp32", torch.device("cpu"), 0, CONF_DIR) is None


def _gpu(monkeypatch, memory: int) -> torch.device:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=memory))
    return torch.device("cuda")


def test_a_base_too_large_for_one_device_is_sharded_under_auto(monkeypatch):
    lora = methods.build({"name": "lora"})
    small = _gpu(monkeypatch, 4 * GIB)  # Llama-3.2-1B in fp32 is 4.6 GiB
    why = size.too_large_for_one_device(_spec("llama-3.2-1b-random"), "fp32", small, 0, CONF_DIR)
    assert why == "base llama-3.2-1b-random's weights (4.6 GiB in fp32) exceed 80% of one device's 4.0 GiB"
    assert resolve_strategy("auto", lora, World(0, 2), why) == "fsdp"
    assert resolve_strategy("ddp", lora, World(0, 2), why) == "ddp"  # asked for: kept
    assert size.too_large_for_one_device(_spec("llama-3.2-1b-random"), "bf16", small, 0, CONF_DIR) is None  # 2.3 GiB fits
    with pytest.raises(HarnessError, match=r"^base llama-3.2-1b-random's weights \(4.6 GiB in fp32\) exceed 80% of one "
                                           r"device's 4.0 GiB, so train.strategy=auto shards it, and method sorsa cannot"):
        resolve_strategy("auto", methods.build({"name": "sorsa"}), World(0, 2), why)
