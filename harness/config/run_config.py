"""The run's own options as typed, validated dataclasses, made once at the boundary.

`RunConfig.of(config)` takes the plain, resolved config Hydra composed (conf/config.yaml plus the
groups) and returns typed objects: `TrainConfig`, `EvalConfig`, `DataConfig`, `WandbConfig`,
`ForgettingConfig` (with one typed piece per probe), and the base model's `ModelSpec`
(harness/models/spec.py). The components get their own piece (the
training loop a `TrainConfig`, the tracker a `WandbConfig`, each probe its own), never the whole
config. Each field carries the rule its values obey (harness/config/checks.py), so
the type and range checks and the fields cannot drift apart; an option the dataclass does not know
(`+train.bach_size=8`) is an error naming the options it has. Defaults live in conf/config.yaml
only: every field is required here. The method's, task's and budget's options stay plain mappings
here (they are part of the run id as written) that their own classes type and validate
(MethodConfig, TaskConfig, Budget.validate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.config.checks import DATA_SOURCES, Rule, first_problem, option, rules_of
from harness.core.errors import HarnessError
from harness.models.spec import ModelSpec
from harness.train.encoding import ENCODINGS


def _build(cls: type, values: Any, group: str) -> Any:
    if not isinstance(values, Mapping):
        raise HarnessError(f"{group}={values!r} is invalid: it must be a mapping of options ({group}.<option>=...)")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise HarnessError(f"{group}.{unknown[0]} is not an option of {group}; its options are: {', '.join(sorted(known))}")
    missing = sorted(known - set(values))
    if missing:
        raise HarnessError(f"{group}.{missing[0]} is missing from the config; conf/config.yaml sets it, "
                           "so a config that drops it was not composed from conf/")
    nested = {f.name: f.metadata["group"] for f in dataclasses.fields(cls) if "group" in f.metadata}
    return cls(**{name: _build(nested[name], values[name], f"{group}.{name}") if name in nested else values[name]
                  for name in known})


@dataclass(frozen=True)
class TrainConfig:
    """How a run trains (`train:` in conf/config.yaml, whose comments give the defaults)."""

    lr: float | None = option("number", low=0, low_open=True, nullable=True)
    """Peak learning rate; null: the method's recommended lr (`method.lr`)."""
    batch_size: int = option("int", low=1)
    """Sequences per micro-batch (per process in a distributed run)."""
    grad_accum: int = option("int", low=1)
    """Micro-batches per optimizer step."""
    max_seq_len: int = option("int", low=1)
    """Prompt + target tokens; the prompt is cut from the left if longer."""
    warmup_ratio: float = option("number", low=0, high=1)
    """Fraction of the planned steps with a linear lr warm-up (unless `warmup_steps` is set)."""
    warmup_steps: int | None = option("int", low=0, nullable=True)
    """Optimizer steps of linear lr warm-up, as a count (HF Trainer's `warmup_steps`); null: `warmup_ratio` decides."""
    lr_schedule: str = option("text", choices=("cosine", "linear"))
    """The lr decay after warm-up, over the planned steps: cosine, or linear to 0 (HF Trainer's default)."""
    encoding: str = option("text", choices=ENCODINGS)
    """How a training pair becomes tokens: separate (prompt and target encoded apart, the prompt cut from
    the left, EOS always appended) | joint (prompt + target as one text cut from the right at
    `max_seq_len`, EOS appended when shorter: alpaca-lora's and LLM-Adapters' `tokenize`)."""
    loss_on_prompt: bool = option("bool")
    """Train on the prompt's tokens too, not only the target's (alpaca-lora's `train_on_inputs`); validation
    and evaluation losses stay on the target."""
    grad_clip: float | None = option("number", low=0, nullable=True)
    """Gradient-norm clip; 0 or null: none."""
    precision: str = option("text", choices=("auto", "fp32", "fp16", "bf16"))
    """Autocast of the forward passes; auto: bf16 on GPUs that support it (else fp16), fp32 on CPU."""
    loss_scaling: str = option("text", choices=("none", "dynamic"))
    """For runs that compute in fp16: dynamic scales the loss so that small fp16 gradients do not
    underflow, skipping the steps whose gradients overflow (torch.amp.GradScaler, as HF Trainer's
    `fp16=True`); none: unscaled gradients, as the harness computed before this option."""
    data_seed: int = option("int", low=0)
    """Seed of the training batch order (`${seed}` unless set)."""
    init_seed: int = option("int", low=0)
    """Seed of the method's own init, e.g. adapter weights (`${seed}` unless set)."""
    lr_sweep: list[float] = option("number list", low=0, low_open=True)
    """lr_sweep/v1: multipliers of the method's lr; the best on validation wins; []: off."""
    eval_every: int = option("int", low=0)
    """Validation loss every N optimizer steps, for curves and steps_to_target; 0: off."""
    val_items: int = option("int", low=1)
    """Validation items carved from the training pool when lr_sweep or eval_every is on."""
    select_best: bool = option("bool")
    """select_best/v1: the run keeps the trainable state of the validation point (every `eval_every`
    steps, step 0 excluded) with the lowest val_loss, as HF Trainer's `load_best_model_at_end`."""
    steps_to_target_fraction: float = option("number", low=0, high=1, low_open=True)
    """steps_to_target/v1: the first step with this fraction of the final validation-loss gain."""
    gradient_checkpointing: bool = option("bool")
    """Recompute activations in backward: less memory, about 30 % more compute."""
    group_by_length: bool = option("bool")
    """Batch items of similar length together (seeded): less padding, the same data per epoch."""
    packing: bool = option("bool")
    """Several items per row, attention kept within each item: no padding at all."""
    checkpoint_every: int = option("int", low=0)
    """Save trainable state, optimizer and data position every N steps; 0: off."""
    checkpoint_minutes: float = option("number", low=0)
    """... or every N minutes of training; 0: off."""
    keep_checkpoints: bool = option("bool")
    """false: a finished run deletes its checkpoint."""
    strategy: str = option("text", choices=("auto", "ddp", "fsdp", "none"))
    """How the processes of torchrun / accelerate launch share a run; none: one process (what auto
    resolves to in a plain launch, and what the run records then)."""
    world_size: int = option("int", low=1)
    """Processes sharing the run; the launcher sets it (WORLD_SIZE)."""

    @property
    def lr_searched(self) -> bool:
        return bool(self.lr_sweep)

    @property
    def needs_validation(self) -> bool:
        """Held-out training items are carved for the validation curve and the lr search."""
        return bool(self.eval_every or self.lr_sweep)


@dataclass(frozen=True)
class EvalConfig:
    """How a run evaluates (`eval:`)."""

    merge_adapters: bool = option("bool")
    """Fold mergeable adapters into the weights before evaluating (same function, faster)."""
    log_samples: bool = option("bool")
    """Per-item scores and predictions in the `samples` table."""
    latency_tokens: int = option("int", low=0)
    """cost/latency/v1: ms per generated token over this many tokens, merged and unmerged; 0: not measured."""
    shard_over_ranks: bool = option("bool")
    """In a run over several processes with train.strategy=ddp, every rank scores its share of the task's
    items and rank 0 gathers them (false: rank 0 scores them all while the others wait). Under fsdp only
    rank 0 holds the whole model, so it evaluates alone either way. Not part of the run id."""


@dataclass(frozen=True)
class DataConfig:
    """Where data comes from (`data:`)."""

    dir: str | None = option("text", nullable=True)
    """A local data folder in ../shared/data's layout (`HARNESS_DATA_DIR`)."""
    order: list[str] = option("text list", choices=DATA_SOURCES, distinct=True)
    """Sources tried in this order; the first that has the data wins."""


@dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases logging (`wandb:`)."""

    enabled: bool = option("bool")
    """Log the run to wandb."""
    mode: str = option("text", choices=("offline", "online", "disabled"))
    """online | offline | disabled (offline never asks to log in; `wandb sync` uploads later)."""
    project: str = option("text")
    """The wandb project."""
    entity: str | None = option("text", nullable=True)
    """The wandb entity (team or user); null: the default."""


PROBE_NAMES = ("general_text", "general_suite", "kl_drift")


@dataclass(frozen=True)
class GeneralTextConfig:
    """The general-text probe (`forgetting.general_text:`): cross-entropy on WikiText-2 test."""

    hub: dict = field(metadata={"component": "the hub source: path, name, split"})
    """The hub source of the text: `{path, name, split}`."""
    local_file: str = option("text")
    """The text file under data.dir."""
    max_chars: int = option("int", low=1)
    """Characters of the text read, from its start."""
    n_chunks: int = option("int", low=1)
    """Chunks scored ..."""
    chunk_tokens: int = option("int", low=1)
    """... of this many tokens each, from the start of the text."""
    batch_size: int = option("int", low=1)
    """Chunks per forward pass."""


@dataclass(frozen=True)
class GeneralSuiteConfig:
    """The general-suite probe (`forgetting.general_suite:`): registered tasks' own eval items."""

    required: bool = option("bool")
    """false: skipped with a notice when its data are missing; true: an error."""
    tasks: list = field(metadata={"component": "the probe's member specs (harness/probes/general_suite.py)"})
    """Members: `{task: <conf/task name>, metric: <its metric>, with: {task option overrides}}`."""


@dataclass(frozen=True)
class KLDriftConfig:
    """The KL-drift probe (`forgetting.kl_drift:`)."""

    n_prompts: int = option("int", low=1, high=8)
    """Fixed prompts the base model continues (at most the 8 it has)."""
    new_tokens: int = option("int", low=1)
    """Greedy tokens per continuation."""


@dataclass(frozen=True)
class ForgettingConfig:
    """Learning and forgetting measured in the run (`forgetting:`)."""

    probes: list[str] = option("text list", choices=PROBE_NAMES)
    """Forgetting probes, any of general_text, general_suite, kl_drift; [] for none."""
    probe: str | None = option("text", choices=(*PROBE_NAMES, "none"), nullable=True)
    """The older single-probe form (one name, or none); when set it replaces `probes`."""
    target_gain: bool = option("bool")
    """Learning: the task scored on the base model too, gain_<metric> = tuned - base."""
    fallback_to_kl: bool = option("bool")
    """General text unavailable: kl_drift instead of an error."""
    general_text: GeneralTextConfig = field(metadata={"group": GeneralTextConfig})
    general_suite: GeneralSuiteConfig = field(metadata={"group": GeneralSuiteConfig})
    kl_drift: KLDriftConfig = field(metadata={"group": KLDriftConfig})

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ForgettingConfig:
        """The `forgetting` node of a config, typed and checked (one HarnessError line)."""
        problem = first_problem({"forgetting": values}, rules_of(cls, "forgetting"))
        if problem:
            raise HarnessError(problem)
        return _build(cls, values, "forgetting")

    def probe_names(self) -> list[str]:
        """`probes`, or the older single `probe` (none | one name) when set."""
        if self.probe is None:
            return list(self.probes)
        return [] if self.probe == "none" else [self.probe]


@dataclass(frozen=True)
class RunConfig:
    """One run's composed config: its own options typed, the components' options as mappings."""

    seed: int = option("int", low=0)
    """Run seed: data order and adapter init, through train.data_seed and train.init_seed."""
    device: str = option("device")
    """auto (cuda when available) | cpu | cuda[:N]."""
    results_dir: str = option("text")
    """Where tables, sweep logs and caches land."""
    force: bool = option("bool")
    """Rerun even when this run_id already finished."""
    sweep_name: str = option("text")
    """The sweep's name: files runs and names the sweep folder."""
    train: TrainConfig = field(metadata={"group": TrainConfig})
    eval: EvalConfig = field(metadata={"group": EvalConfig})
    data: DataConfig = field(metadata={"group": DataConfig})
    wandb: WandbConfig = field(metadata={"group": WandbConfig})
    forgetting: ForgettingConfig = field(metadata={"group": ForgettingConfig})
    model: ModelSpec = field(metadata={"typed": ModelSpec.of})
    method: dict = field(metadata={"component": "the method's MethodConfig"})
    task: dict = field(metadata={"component": "the task's class (harness/tasks/)"})
    budget: dict = field(metadata={"component": "Budget (harness/budget/spec.py)"})

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "RunConfig":
        """Typed and validated: the first bad option raises HarnessError in one line."""
        check_options(config)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in config:
                raise HarnessError(f"{f.name} is missing from the config; compose it from conf/ (python -m harness ...)")
            group, typed = f.metadata.get("group"), f.metadata.get("typed")
            values[f.name] = (_build(group, config[f.name], f.name) if group else
                              typed(config[f.name]) if typed else config[f.name])
        return cls(**values)


GROUPS = {"train": TrainConfig, "eval": EvalConfig, "data": DataConfig, "wandb": WandbConfig, "forgetting": ForgettingConfig,
          "forgetting.general_text": GeneralTextConfig, "forgetting.general_suite": GeneralSuiteConfig,
          "forgetting.kl_drift": KLDriftConfig}

# Options of the components' mappings that several of them share: their types here, their meaning
# and finer checks with their owners.
COMPONENT_RULES: tuple[Rule, ...] = (
    # budget numbers: their types here, their ranges in Budget.validate
    *(Rule(f"budget.{name}", "int", nullable=True) for name in ("max_steps", "max_tokens")),
    *(Rule(f"budget.{name}", "number", nullable=True) for name in ("max_time_s", "epochs")),
    Rule("budget.target_params", "int", nullable=True),
    *(Rule(f"budget.{name}", "number", nullable=True) for name in ("target_params_pct", "param_tolerance", "max_memory_gib")),
)

RULES: tuple[Rule, ...] = (*rules_of(RunConfig, ""), *COMPONENT_RULES)


def check_options(config: Mapping[str, Any]) -> None:
    """Raise HarnessError naming the first option that breaks its rule, the bad value and what is allowed."""
    problem = first_problem(config, RULES)
    if problem:
        raise HarnessError(problem)
