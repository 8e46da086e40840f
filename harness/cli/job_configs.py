"""The resolved config of each job of a sweep, with Hydra's composition paid once per distinct set
of config-group choices instead of once per job (about 0.3 s each: a 10,000-job sweep would wait
close to an hour), and the resolution once per composition where that is exact.

Why this is the config Hydra's `compose` returns: Hydra composes in two stages. It first builds the
defaults list and merges the config files it names; only the group overrides (`method=lora`,
`+sweep=smoke`) take part, since interpolations in a defaults list may refer to group choices only.
Then it applies the plain value overrides (`seed=3`, `train.lr=1e-4`, `+x=1`, `~y`) in order to the
merged, struct-mode config (`ConfigLoaderImpl._apply_overrides_to_config`), and `compose` drops
the `hydra` node. `JobComposer` composes the first stage through Hydra for each distinct tuple of
group overrides, keeps it, and for every job applies that job's value overrides to a copy with the
same Hydra function. An override is a value override exactly when Hydra's own defaults-list code
says so (not a config group, or a dict value); anything else, and anything that touches `hydra`,
stays in the composed tuple, so Hydra handles it (and its errors) itself. Config groups are looked
up in the config dir's search path; a config that adds search paths of its own (`hydra.searchpath`)
is composed in full for every job. The resolution is skipped where harness/cli/config_template.py
shows it exact, and the first job of each kind is checked against a full resolution anyway.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Callable, Sequence

from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from harness.cli.config_template import Template
from harness.core.paths import CONF_DIR

Compose = Callable[[list[str], bool], DictConfig]  # (overrides, with_hydra) -> Hydra's composed config


@dataclass(frozen=True)
class ResolvedJob:
    """A job's resolved config and the same as plain dicts and lists (OmegaConf.to_container of it)."""

    config: DictConfig
    plain: dict


@dataclass
class _Composition:
    """One distinct tuple of group overrides, composed: pickled copies are fresh configs, flags and all."""

    composed: bytes
    resolved: bytes | None  # None: resolving it fails, or its interpolations rule the shortcut out
    resolved_plain: dict | None  # the resolved config as plain dicts and lists
    template: Template
    # Kinds of job (the options changed, and how) whose shortcut gave the same config as resolving in
    # full, and those whose shortcut did not (none known; they are resolved in full).
    checked: set[tuple] = field(default_factory=set)
    refused: set[tuple] = field(default_factory=set)


class JobComposer:
    """`resolved(job_overrides).config` equals `compose_fn(job_overrides)` followed by
    `OmegaConf.resolve` (see the module docstring), with one Hydra composition per distinct tuple of
    group overrides; `.plain` equals `OmegaConf.to_container` of it."""

    def __init__(self, compose_fn: Compose):
        self._compose_fn = compose_fn
        self._parser = OverridesParser.create()
        self._parsed: dict[str, Override] = {}
        self._groups: dict[str, bool] = {}
        self._compositions: dict[tuple[str, ...], _Composition | None] = {}  # None: compose each job in full
        self.compositions = 0  # Hydra compositions so far (tests and benchmarks read them)
        self.shortcuts = 0  # jobs resolved by the shortcut of harness/cli/config_template.py
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                self._repository = GlobalHydra.instance().config_loader().repository
        finally:
            GlobalHydra.instance().clear()

    def resolved(self, overrides: Sequence[str]) -> ResolvedJob:
        parsed = [self._parse(o) for o in overrides]
        values = [o for o in parsed if self._is_value_override(o)]
        groups = tuple(o.input_line for o in parsed if not self._is_value_override(o))
        if groups not in self._compositions:
            self._compositions[groups] = self._compose(list(groups))
        composition = self._compositions[groups]
        if composition is None:
            self.compositions += 1
            return _job(_resolve(self._compose_fn(list(overrides), False)))
        plan = composition.template.plan(values) if composition.resolved is not None else None
        kind = tuple((o.key_or_group, o.type) for o in values)  # the options this job changes, and how
        if plan is None or kind in composition.refused:
            return _job(_resolve(_applied(composition.composed, values)))
        cfg = _applied(composition.resolved, values)
        plain = _copy_tree(composition.resolved_plain)
        for reference, target in plan:
            OmegaConf.update(cfg, reference, OmegaConf.select(cfg, target), merge=True)
        for path in [o.key_or_group for o in values] + [reference for reference, _ in plan]:
            *parents, leaf = path.split(".")
            node = plain
            for part in parents:
                node = node[part]
            node[leaf] = OmegaConf.select(cfg, path)
        if kind not in composition.checked:  # the first job of each kind: compared with the long way
            full = _job(_resolve(_applied(composition.composed, values)))
            if OmegaConf.to_yaml(cfg) != OmegaConf.to_yaml(full.config) or plain != full.plain:
                composition.refused.add(kind)  # never seen; the long way is the truth
                return full
            composition.checked.add(kind)
        self.shortcuts += 1
        return ResolvedJob(cfg, plain)

    def _compose(self, groups: list[str]) -> _Composition | None:
        self.compositions += 1
        cfg = self._compose_fn(groups, True)
        if cfg.hydra.get("searchpath"):  # groups from outside the config dir: not looked up here
            return None
        with open_dict(cfg):  # as hydra.compose does without return_hydra_config
            del cfg["hydra"]
        composed = pickle.dumps(cfg)
        template = Template(cfg)
        try:
            resolved = _resolve(pickle.loads(composed)) if template.usable else None
        except Exception:  # every job resolves in full, and fails there with the real error
            resolved = None
        if resolved is None:
            return _Composition(composed, None, None, template)
        return _Composition(composed, pickle.dumps(resolved), OmegaConf.to_container(resolved), template)

    def _parse(self, line: str) -> Override:
        if line not in self._parsed:
            self._parsed[line] = self._parser.parse_overrides([line])[0]  # Hydra's own parse errors
        return self._parsed[line]

    def _is_value_override(self, override: Override) -> bool:
        """Hydra's own test (hydra/_internal/defaults_list.py, Overrides): not a config group, or a
        dict value. Sweeps, package overrides and anything under `hydra` go to Hydra whole."""
        key = override.key_or_group
        if override.is_sweep_override() or override.package is not None or key.split(".")[0].split("/")[0] == "hydra":
            return False
        if isinstance(override.value(), dict):
            return True
        if key not in self._groups:
            self._groups[key] = self._repository.group_exists(key)
        return not self._groups[key]


def _applied(pickled: bytes, values: list[Override]) -> DictConfig:
    cfg = pickle.loads(pickled)  # a fresh copy, twice as fast as a deepcopy
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


def _job(cfg: DictConfig) -> ResolvedJob:
    return ResolvedJob(cfg, OmegaConf.to_container(cfg))


def _copy_tree(node):
    """A copy of nested dicts and lists of plain values (which are immutable), much faster than deepcopy."""
    if isinstance(node, dict):
        return {k: _copy_tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy_tree(v) for v in node]
    return node


def _resolve(cfg: DictConfig) -> DictConfig:
    OmegaConf.resolve(cfg)
    return cfg
