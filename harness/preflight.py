"""Validate every job of a sweep before the first one starts, so a typo in the last job of a
sweep fails in a second with a one-line error instead of after hours, with no rows written."""

from __future__ import annotations

import itertools
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from harness.errors import HarnessError
from harness.experiment import CONF_DIR, prepare


def expand_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The override list of every job that Hydra's basic sweeper would launch."""
    parser = OverridesParser.create()
    flags = ("-m", "--multirun")
    cli = [o for o in overrides if o not in flags]
    parsed = parser.parse_overrides(cli)
    cfg = _compose([o.input_line for o in parsed if not o.is_sweep_override()], with_hydra=True)
    multirun = str(cfg.hydra.mode) == "RunMode.MULTIRUN" or any(f in overrides for f in flags)
    if not multirun and any(o.is_sweep_override() for o in parsed):
        sweeping = next(o.input_line for o in parsed if o.is_sweep_override())
        raise HarnessError(f"{sweeping} lists several values but this is a single run; add -m or use +sweep=NAME")
    params = cfg.hydra.sweeper.get("params") or {}
    # Command-line overrides come after the sweep file's axes: for the same key they win, as in Hydra.
    by_key: dict[str, list[str]] = {}
    for o in parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + cli):
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        by_key[key] = [f"{key}={v}" for v in values]
    return [list(combo) for combo in itertools.product(*by_key.values())]


def _compose(overrides: list[str], with_hydra: bool = False):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=with_hydra)
    except MissingConfigException as exc:
        raise HarnessError(_missing_option_message(exc)) from None
    finally:
        GlobalHydra.instance().clear()


def _missing_option_message(exc: MissingConfigException) -> str:
    group = (exc.missing_cfg_file or "").split("/")[0]
    name = (exc.missing_cfg_file or "").split("/")[-1]
    if exc.options:
        return f"unknown {group} {name!r}; valid {group} names: {', '.join(sorted(exc.options))} (choose with {group}=NAME)"
    return str(exc).splitlines()[0]


def check(overrides: Sequence[str]) -> int:
    """Compose and validate every job; returns the number of jobs. Raises HarnessError."""
    jobs = expand_jobs(overrides)
    for job in jobs:
        cfg = _compose([o for o in job if not o.startswith("hydra.")])
        OmegaConf.resolve(cfg)
        prepare(cfg)
    return len(jobs)
