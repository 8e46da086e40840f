"""Learning and forgetting, measured on the same run: the base model (before the method touches it,
i.e. adapters disabled) against the tuned model after training.

Forgetting probes (`forgetting.probes`, any subset, in this order):

* `general_text` (v1): mean per-token cross-entropy on WikiText-2 test text, chunked into
  `n_chunks` x `chunk_tokens` from the start of the file; reports before, after and the delta
  (after - before; > 0 means the tuned model predicts general text worse).
* `general_suite` (v1): accuracy on a fixed suite of eval-only task specs (registered tasks'
  own eval items and scoring, e.g. MMLU subjects and ARC by log-likelihood); reports before, after
  and the delta (after - before, macro over members; < 0 means forgetting), and each member's delta.
* `kl_drift` (v1): the base model greedily continues fixed prompts; the probe reports the mean
  per-token KL(base || tuned) on those continuations. Needs no data; also the fallback of
  `general_text` when no text source is available.

Learning (`forgetting.target_gain`): every final metric of the run's task is also measured on the
base model with the same items and scoring; `gain_<metric>` = tuned - base (paired by item).

Base-model values are cached per model x probe/eval config x items (under
`<results_dir>/cache/forgetting/`), so a sweep computes them once per model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness import tasks
from harness.cache import compute_once
from harness.data_sources import DataMissing, first_available, hub_loader, read_local
from harness.errors import HarnessError
from harness.hashing import hash_object
from harness.metrics import Metric, mean_and_stderr
from harness.scoring import chunk_cross_entropy, continuation_log_probs
from harness.tasks.base import EvalContext, Task, TaskData

PROBES = ("general_text", "general_suite", "kl_drift")
KL_PROMPTS = (
    "The history of the city begins",
    "In mathematics, a prime number is",
    "The recipe calls for",
    "Scientists have discovered that",
    "The best way to learn a new language is",
    "On the first day of school,",
    "The committee announced on Monday that",
    "Water boils at",
)


def cached(cache_root: Path, key: Mapping[str, Any], compute: Callable[[], dict]) -> tuple[dict, bool]:
    """(value, was_cached): the JSON value stored under the hash of `key`, computed on first use
    and written atomically; parallel sweep jobs compute it once, the others wait (harness.cache)."""
    path = cache_root / f"{hash_object(dict(key))}.json"
    computed = []

    def write(tmp: Path) -> None:
        computed.append(compute())
        tmp.write_text(json.dumps(computed[0]))

    compute_once(path, write)
    return (computed[0], False) if computed else (json.loads(path.read_text()), True)


def evaluate_task(task: Task, data: TaskData, model: nn.Module, tok: PreTrainedTokenizerBase,
                  device: torch.device, max_len: int) -> dict:
    """A task's own evaluation as plain data: its metric rows and per-item samples."""
    ctx = EvalContext(model, tok, device, max_len)
    return {"metrics": [m.row() for m in task.evaluate(ctx, data)], "samples": ctx.samples}


def per_item(samples: list[dict], task: str, metric: str) -> dict[str, float]:
    return {s["item_id"]: s["value"] for s in samples if s["task"] == task and s["metric"] == metric}


def paired_delta(after: dict[str, float], before: dict[str, float]) -> tuple[float, float | None, int]:
    """Mean and stderr of after - before over the items both measured."""
    common = [i for i in after if i in before]
    mean, se = mean_and_stderr([after[i] - before[i] for i in common])
    return mean, se, len(common)


class GeneralTextProbe:
    name = "general_text"

    def __init__(self, cfg: Mapping[str, Any], text: str, source: str, cache_root: Path):
        self.cfg, self.text_source, self.cache_root = cfg, source, cache_root
        self.text_sha = hash_object(text, 64)
        self.text = text[: cfg["max_chars"]]
        self.before: list[float] | None = None

    def _chunks(self, tok: PreTrainedTokenizerBase) -> torch.Tensor:
        n, length = self.cfg["n_chunks"], self.cfg["chunk_tokens"]
        ids = tok(self.text, add_special_tokens=False)["input_ids"]
        if len(ids) < n * length:
            raise HarnessError(f"forgetting.general_text needs {n * length} tokens, the text has {len(ids)}; lower n_chunks")
        return torch.tensor(ids[: n * length]).view(n, length)

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        key = {"model": model_identity, "probe": dict(self.cfg), "text": self.text_sha, "v": "v1"}
        value, _ = cached(self.cache_root, key, lambda: {
            "per_chunk_ce": chunk_cross_entropy(model, self._chunks(tok), self.cfg["batch_size"], device),
            "model": model_identity,
        })
        self.before = value["per_chunk_ce"]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.before is not None, "baseline() must run before the method is applied"
        after = chunk_cross_entropy(model, self._chunks(tok), self.cfg["batch_size"], device)
        task, n = "forgetting/general_text", len(after)
        before_mean, before_se = mean_and_stderr(self.before)
        after_mean, after_se = mean_and_stderr(after)
        delta_mean, delta_se = mean_and_stderr([a - b for a, b in zip(after, self.before)])  # paired by chunk
        return [
            Metric(task, "general_ce_before", before_mean, before_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "general_ce_after", after_mean, after_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "forgetting_ce_delta", delta_mean, delta_se, n, False, "forgetting/ce_delta/v1"),
        ]


class KLDriftProbe:
    name = "kl_drift"

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg
        self.sequences: list[torch.Tensor] = []
        self.base_log_probs: list[torch.Tensor] = []

    @torch.no_grad()
    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        model.eval()
        n_new = self.cfg["new_tokens"]
        tok.padding_side = "left"
        try:
            enc = tok(list(KL_PROMPTS[: self.cfg["n_prompts"]]), return_tensors="pt", padding=True).to(device)
        finally:
            tok.padding_side = "right"
        # min_new_tokens: every prompt gets exactly n_new continuation tokens.
        gen = model.generate(**enc, do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                             pad_token_id=tok.pad_token_id).cpu()
        width = enc["input_ids"].shape[1]
        prompt_masks = enc["attention_mask"].bool().cpu()
        self.sequences = [torch.cat([g[:width][m], g[width:]]) for g, m in zip(gen, prompt_masks)]
        self.base_log_probs = [continuation_log_probs(model, s, n_new, device) for s in self.sequences]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.sequences, "baseline() must run before the method is applied"
        n_new = self.cfg["new_tokens"]
        kl = []
        for seq, base in zip(self.sequences, self.base_log_probs):
            tuned = continuation_log_probs(model, seq, n_new, device)
            kl.append(float((base.exp() * (base - tuned)).sum(-1).mean()))  # mean over positions
        mean, se = mean_and_stderr(kl)
        return [Metric("forgetting/kl_drift", "forgetting_kl", mean, se, len(kl), False, "forgetting/kl_drift/v1")]


class GeneralSuiteProbe:
    """Accuracy on eval-only specs `{task: <conf/task name>, metric: <its metric>, with: {overrides}}`:
    each spec's task is built from its yaml plus `with`, loads its own eval items and scores them
    with its own evaluate(); every row of `metric` it returns is one member of the suite."""

    name = "general_suite"
    VERSION = "v1"

    def __init__(self, cfg: Mapping[str, Any], data_cfg: Mapping[str, Any], cache_root: Path, conf_dir: Path,
                 max_len: int):
        self.cfg, self.cache_root, self.max_len = cfg, cache_root, max_len
        self.members: list[tuple[Task, TaskData, str]] = []
        for spec in cfg["tasks"]:
            path = conf_dir / "task" / f"{spec['task']}.yaml"
            if not path.is_file():
                raise HarnessError(f"forgetting.general_suite names task {spec['task']!r}, which has no {path}; fix forgetting.general_suite.tasks")
            task = tasks.build({**yaml.safe_load(path.read_text()), **dict(spec.get("with") or {})})
            self.members.append((task, task.load(data_cfg), spec["metric"]))
        self.before: list[dict] = []

    def _key(self, model_identity: dict, device: torch.device, task: Task, data: TaskData) -> dict:
        return {"model": model_identity, "task": dict(task.cfg), "eval": data.identity["eval_sha256"],
                "device": device.type, "max_len": self.max_len, "v": f"general_suite/{self.VERSION}"}

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        self.before = [
            cached(self.cache_root, self._key(model_identity, device, task, data),
                   partial(evaluate_task, task, data, model, tok, device, self.max_len))[0]
            for task, data, _ in self.members
        ]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.before, "baseline() must run before the method is applied"
        rows, befores, afters, deltas = [], [], [], []
        for (task, data, metric), before in zip(self.members, self.before):
            after = evaluate_task(task, data, model, tok, device, self.max_len)
            for row in (r for r in after["metrics"] if r["metric"] == metric):
                base = next(r for r in before["metrics"] if r["task"] == row["task"] and r["metric"] == metric)
                mean, se, n = paired_delta(per_item(after["samples"], row["task"], metric),
                                           per_item(before["samples"], row["task"], metric))
                rows.append(Metric(f"forgetting/general_suite/{row['task']}", "forgetting_acc_delta", mean, se, n, True,
                                   f"forgetting/acc_delta/{self.VERSION}+{row['metric_version']}"))
                befores.append(base["value"])
                afters.append(row["value"])
                deltas.append((mean, se, n))
        if not deltas:
            raise HarnessError("forgetting.general_suite measured nothing: no member returned its named metric; fix forgetting.general_suite.tasks")
        k, n_items = len(deltas), sum(n for _, _, n in deltas)
        errors = [se for _, se, _ in deltas]
        delta_se = (sum(e * e for e in errors) ** 0.5 / k) if None not in errors else None
        task = "forgetting/general_suite"
        return rows + [  # macro averages over members, so large members do not drown small ones
            Metric(task, "general_acc_before", sum(befores) / k, None, n_items, True, f"forgetting/general_acc/{self.VERSION}"),
            Metric(task, "general_acc_after", sum(afters) / k, None, n_items, True, f"forgetting/general_acc/{self.VERSION}"),
            Metric(task, "forgetting_acc_delta", sum(d for d, _, _ in deltas) / k, delta_se, n_items, True,
                   f"forgetting/acc_delta/{self.VERSION}"),
        ]


class TargetGain:
    """The run's own task on the base model, so every final task metric gets `gain_<metric>`."""

    VERSION = "v1"

    def __init__(self, cache_root: Path, task: Task, data: TaskData, max_len: int):
        self.cache_root, self.task, self.data, self.max_len = cache_root, task, data, max_len
        self.before: dict | None = None

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        key = {"model": model_identity, "task": dict(self.task.cfg), "eval": self.data.identity["eval_sha256"],
               "device": device.type, "max_len": self.max_len, "v": f"target_gain/{self.VERSION}"}
        self.before, _ = cached(self.cache_root, key,
                                lambda: evaluate_task(self.task, self.data, model, tok, device, self.max_len))

    def measure(self, task_metrics: list[Metric], samples: list[dict]) -> list[Metric]:
        assert self.before is not None, "baseline() must run before the method is applied"
        base = {(r["task"], r["metric"], r["metric_version"]): r for r in self.before["metrics"]}
        rows = []
        for m in task_metrics:
            b = base.get((m.task, m.metric, m.version))
            if b is None or m.step is not None:
                continue
            after, before = per_item(samples, m.task, m.metric), per_item(self.before["samples"], m.task, m.metric)
            if after and after.keys() == before.keys():  # paired by item
                value, se, n = paired_delta(after, before)
            else:  # aggregate rows (e.g. a suite's mean) have no per-item values
                value, se, n = m.value - b["value"], None, m.n
            rows.append(Metric(m.task, f"gain_{m.metric}", value, se, n, m.higher_is_better,
                               f"gain/{self.VERSION}+{m.version}"))
        return rows


class Probes:
    """Every configured probe plus the target gain: `baseline` before the method is applied,
    `measure` after training (with the run's task metrics and samples)."""

    def __init__(self, probes: list, gain: TargetGain | None):
        self.probes, self.gain = probes, gain

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        for probe in [*self.probes, *([self.gain] if self.gain else [])]:
            probe.baseline(model, tok, model_identity, device)

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device,
                task_metrics: list[Metric], samples: list[dict]) -> list[Metric]:
        rows = self.gain.measure(task_metrics, samples) if self.gain else []
        for probe in self.probes:
            rows += probe.measure(model, tok, device)
        return rows


def general_text(cfg: Mapping[str, Any], data_cfg: Mapping[str, Any],
                 purpose: str = "the general-text forgetting probe") -> tuple[str, str]:
    """(source, text) of the general text (`forgetting.general_text`) from the first source that works."""
    hub = cfg["hub"]
    loaders = {
        "hub": lambda: "".join(r["text"] for r in hub_loader(hub["path"], hub["name"], hub["split"])()),
        "local": lambda: read_local(data_cfg.get("dir"), cfg["local_file"], lambda path: path.read_text(encoding="utf-8")),
    }
    return first_available(purpose, loaders, list(data_cfg["order"]))


def probe_names(cfg: Mapping[str, Any]) -> list[str]:
    """`forgetting.probes`, or the older single `forgetting.probe` (none | one name) when set."""
    legacy = cfg.get("probe")
    names = list(cfg["probes"]) if legacy is None else ([] if legacy == "none" else [legacy])
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise HarnessError(f"forgetting.probes has unknown {', '.join(map(str, unknown))}; valid: {', '.join(PROBES)}")
    return names


_NOTICED: set[str] = set()


def notice_once(message: str) -> None:
    """Print a probe's fallback once per process: the preflight builds the probes of every job of a sweep."""
    if message not in _NOTICED:
        _NOTICED.add(message)
        print(f"[harness] forgetting: {message}", flush=True)


def build_probes(cfg: Mapping[str, Any], data_cfg: Mapping[str, Any], cache_root: Path, conf_dir: Path,
                 task: Task, data: TaskData, max_len: int) -> Probes:
    """The configured probes; `general_text` falls back to `kl_drift` when no text source works."""
    probes = []
    for name in probe_names(cfg):
        if name == "general_suite":
            try:
                probes.append(GeneralSuiteProbe(cfg["general_suite"], data_cfg, cache_root, conf_dir, max_len))
            except DataMissing as miss:  # like general_text: a probe's data is optional unless required
                if cfg["general_suite"].get("required", False):
                    raise
                notice_once(f"{miss}; general_suite skipped (forgetting.general_suite.required=true makes this an error)")
        elif name == "kl_drift":
            probes.append(KLDriftProbe(cfg["kl_drift"]))
        else:
            try:
                source, text = general_text(cfg["general_text"], data_cfg)
                probes.append(GeneralTextProbe(cfg["general_text"], text, source, cache_root))
            except HarnessError as miss:
                if not cfg.get("fallback_to_kl", True):
                    raise
                notice_once(f"{miss}; falling back to kl_drift")
                if "kl_drift" not in probe_names(cfg):
                    probes.append(KLDriftProbe(cfg["kl_drift"]))
    gain = TargetGain(cache_root, task, data, max_len) if cfg.get("target_gain", True) else None
    return Probes(probes, gain)
