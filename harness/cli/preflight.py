"""Validate every job of a sweep before the first one starts, so a typo in the last job of a
sweep fails in a second with a one-line error instead of after hours, with no rows written."""

from __future__ import annotations

import gc
import itertools
import os
from contextlib import contextmanager
from typing import Iterator, Sequence

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException

from harness.cli.job_configs import JobComposer
from harness.cli.skip_done import PlannedJob
from harness.cli.summary import run_label
from harness.core.errors import HarnessError
from harness.core.memo import preflight_scope
from harness.core.paths import CONF_DIR
from harness.run.prepare import prepare
from harness.run.tracking import check_config as check_wandb

SWEEP_JOBS_ENV = "HARNESS_SWEEP_JOBS"


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
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            # glob(...) over a config group needs a loader that can list the group's options.
            loader_parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            for o in loader_parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + cli):
                key = o.get_key_element()
                values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
                by_key[key] = [f"{key}={v}" for v in values]
    finally:
        GlobalHydra.instance().clear()
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


# Launcher plugins are separate packages: an unknown hydra/launcher usually means one is missing.
LAUNCHER_PACKAGES = {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
                     "submitit_slurm": "hydra-submitit-launcher", "ray": "hydra-ray-launcher", "ray_aws": "hydra-ray-launcher"}


def _missing_option_message(exc: MissingConfigException) -> str:
    group, _, name = (exc.missing_cfg_file or "").rpartition("/")
    if group == "hydra/launcher" and name in LAUNCHER_PACKAGES:
        return f"the {name} launcher needs the package {LAUNCHER_PACKAGES[name]!r}; install it with `pip install {LAUNCHER_PACKAGES[name]}`"
    if exc.options:
        # Groups without a default (sweep, launcher) are added with `+`; hydra's own groups with a slash.
        how = f"+{group}=NAME" if group in ("sweep", "launcher") else f"{group}=NAME"
        return f"unknown {group} {name!r}; valid {group} names: {', '.join(sorted(exc.options))} (choose with {how})"
    return str(exc).splitlines()[0]


def check_environment(n_jobs: int) -> None:
    """Under torchrun / accelerate launch (WORLD_SIZE > 1) the processes share one run
    (harness/distributed/); a sweep there would run every job in every process at once."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and n_jobs > 1:
        raise HarnessError(
            f"a sweep of {n_jobs} jobs was launched as {world} processes (WORLD_SIZE={world}, by torchrun or "
            "`accelerate launch`), which share one run: launch the sweep with `python -m harness` and make each job "
            "a torchrun (+launcher=slurm_multinode), or torchrun one run at a time"
        )


def check_launcher_order(overrides: Sequence[str]) -> None:
    """A sweep file may pick its own launcher (lora_vs_pissa runs two jobs at once); Hydra applies
    the later of two launcher choices, so a `+launcher=` given before such a sweep would lose."""
    names = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if "launcher" not in names or "sweep" not in names or names.index("launcher") > names.index("sweep"):
        return
    launcher, sweep = overrides[names.index("launcher")], overrides[names.index("sweep")]
    sweep_file = CONF_DIR / "sweep" / f"{sweep.split('=', 1)[1]}.yaml"
    defaults = (yaml.safe_load(sweep_file.read_text()) or {}).get("defaults", []) if sweep_file.is_file() else []
    if any(isinstance(d, dict) and "override /hydra/launcher" in d for d in defaults):
        raise HarnessError(f"{launcher} comes before {sweep}, which picks its own launcher; "
                           f"put {launcher} after {sweep}")


def check(overrides: Sequence[str]) -> int:
    """Compose and validate every job; returns the number of jobs. Raises HarnessError."""
    return len(plan(overrides))


def plan(overrides: Sequence[str]) -> list[PlannedJob]:
    """Compose and validate every job, in order (the first bad one raises HarnessError); each job's
    label and run id. What repeats across jobs is done once: composition per distinct set of group
    choices (harness/cli/job_configs.py), task data, probes and model checks per distinct key
    (harness/core/memo.py)."""
    check_launcher_order(overrides)
    jobs = expand_jobs(overrides)
    check_environment(len(jobs))
    composer = JobComposer(_compose)
    planned: list[PlannedJob] = []
    with preflight_scope(), _long_lived_objects_frozen():
        for job in jobs:
            resolved = composer.resolved([o for o in job if not o.startswith("hydra.")])
            prepared = prepare(resolved.plain)  # types and ranges first (RunConfig): nothing below sees a bad value
            run = prepared.run
            check_wandb(run.wandb)
            label = run_label(prepared.method.name, run.model.name, prepared.data.name, prepared.budget.name, run.seed)
            planned.append(PlannedJob(label, prepared.run_id, run.results_dir, run.force, run.sweep_name, tuple(job)))
    # Launchers that run jobs side by side start them with this environment: each job sizes its
    # share of the CPU cores from it (harness.cli.app).
    os.environ[SWEEP_JOBS_ENV] = str(len(jobs))
    return planned


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects alive before the loop (torch,
    transformers, the memoised data): each job leaves a few thousand cyclic config nodes behind, and
    every full pass would walk those millions of old objects again."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
