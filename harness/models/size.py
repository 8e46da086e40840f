"""How much memory a base model's weights take, known before any weight is read, and whether they
fit one accelerator: `train.strategy=auto` shards a base that does not (harness/distributed/parallel.py).

The model is built from its transformers config on the meta device (shapes, no storage), so the
count is exact for every architecture transformers knows, tied embeddings counted once. The config
comes from the source without loading weights: a `random_init` model's own `config`, a `package`
model's config.json, the hub's config.json (the HF cache or the hub). Where none is at hand (the hub
unreachable and not cached; a packaged GGUF, small by design) the size is unknown and nothing is
decided from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig

from harness.models.spec import ENCODER, ModelSpec

WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
FIT_FRACTION = 0.8
"""A base fits one device when its weights take at most this share of the device's memory: the rest
holds activations, the trainable state and the CUDA context."""


def _config(spec: ModelSpec, configs_dir: Path) -> PretrainedConfig | None:
    if spec.source == "random_init":
        from harness.models.loading import borrowed_tokenizer, random_init_config

        return random_init_config(spec, borrowed_tokenizer(spec, configs_dir)[0])  # its vocab may be the tokenizer's
    if spec.source == "package":
        from harness.models.loading import package_model_dir

        return AutoConfig.from_pretrained(package_model_dir(spec))
    if spec.source == "gguf_package":
        return None  # a GGUF's config exists only once converted; packaged GGUFs are small
    from harness.models.hub import hub_usable

    try:
        return AutoConfig.from_pretrained(spec.hub_id, revision=spec.revision, local_files_only=not hub_usable())
    except (OSError, ValueError):  # not cached and the hub unreachable, or gated
        return None


def parameter_count(spec: ModelSpec, configs_dir: Path) -> int | None:
    """The base model's parameter count (None: its config is not at hand)."""
    config = _config(spec, configs_dir)
    if config is None:
        return None
    with torch.device("meta"):
        model = (AutoModel if spec.model_kind == ENCODER else AutoModelForCausalLM).from_config(config)
    return sum(p.numel() for p in model.parameters())


def weight_bytes(spec: ModelSpec, dtype: str, configs_dir: Path) -> int | None:
    """Bytes of the base model's weights in `dtype` (1 per weight under `model.load_in_8bit`)."""
    count = parameter_count(spec, configs_dir)
    if count is None:
        return None
    return count * (1 if spec.load_in_8bit else WEIGHT_BYTES[dtype])


def device_bytes(device: torch.device, local_rank: int) -> int | None:
    """The memory of this rank's accelerator (None on CPU: host memory is not one device's)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.get_device_properties(local_rank).total_memory)


def fits_one_device(weights: int | None, memory: int | None) -> bool:
    """False only when both are known and the weights exceed FIT_FRACTION of the memory."""
    return weights is None or memory is None or weights <= FIT_FRACTION * memory


def too_large_for_one_device(spec: ModelSpec, dtype: str, device: torch.device, local_rank: int,
                             configs_dir: Path) -> str | None:
    """Why the base does not fit one of this run's devices (None: it fits, or a size is unknown)."""
    memory = device_bytes(device, local_rank)
    weights = weight_bytes(spec, dtype, configs_dir) if memory is not None else None
    if fits_one_device(weights, memory):
        return None
    return (f"base {spec.name}'s weights ({weights / 2**30:.1f} GiB in {'int8' if spec.load_in_8bit else dtype}) "
            f"exceed {FIT_FRACTION:.0%} of one device's {memory / 2**30:.1f} GiB")
