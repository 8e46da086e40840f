"""What each task config (conf/task/*.yaml) and each forgetting probe (conf/config.yaml's
`forgetting`) reads from a local data dir, taken from the tasks' own declarations
(`Task.local_datasets`) and the probes' configs, and how to load it the way a run does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.data.layout import HubRequest, LocalDataset, LocalFile, Rows, merge


@dataclass(frozen=True)
class Need:
    """A task or probe: the datasets it reads, and `load(data_dir)`, its own loading of them from the
    local source only (raises when it cannot)."""

    name: str
    kind: str  # "task" | "probe"
    datasets: list[LocalDataset]
    load: Callable[[str], Any]


def task_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


def probe_names() -> list[str]:
    from harness.config.run_config import PROBE_NAMES

    return list(PROBE_NAMES)


def names() -> list[str]:
    return task_names() + probe_names()


def _composed(task: str | None = None) -> dict:
    """The root config (with `task=<task>`), resolved as a plain dict: conf/ is the only source."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"task={task}"] if task else [])
            return {"task": OmegaConf.to_container(cfg.task, resolve=True),
                    "forgetting": OmegaConf.to_container(cfg.forgetting, resolve=True)}
    finally:
        GlobalHydra.instance().clear()


def _local_only(data_dir: str) -> dict:
    return {"dir": data_dir, "order": ["local"]}


def _task_need(name: str, overrides: dict | None = None) -> Need:
    from harness import tasks

    task = tasks.build({**_composed(name)["task"], **(overrides or {})})
    return Need(name, "task", task.local_datasets(), lambda data_dir: task.load(_local_only(data_dir)))


def _general_text(cfg: dict) -> Need:
    from harness.data.general_text import general_text

    hub, relative = cfg["hub"], cfg["local_file"]
    file = LocalFile(relative, lambda path: path.read_text(encoding="utf-8"),
                     (HubRequest(hub["path"], hub["name"], hub["split"]),), _text_bytes)
    return Need("general_text", "probe", [LocalDataset(relative.split("/")[0], (file,))],
                lambda data_dir: general_text(hub, relative, _local_only(data_dir)))


def _text_bytes(rows: Rows) -> bytes:
    """The hub's text rows joined, as the general_text probe joins them."""
    return "".join(row["text"] for row in rows).encode("utf-8")


def _general_suite(cfg: dict) -> Need:
    """The suite's member tasks (their configs plus `with`, as the probe builds them), loaded together."""
    from harness.probes.general_suite import expanded

    members = [_task_need(spec["task"], dict(spec.get("with") or {})) for spec in map(expanded, cfg["tasks"])]
    return Need("general_suite", "probe", merge(d for m in members for d in m.datasets),
                lambda data_dir: [member.load(data_dir) for member in members])


def needs(selected: Iterable[str] | None = None) -> list[Need]:
    """The named tasks and probes (all when None), in the order given; HarnessError on an unknown name."""
    valid = names()
    wanted = list(dict.fromkeys(selected)) if selected else valid
    unknown = [n for n in wanted if n not in valid]
    if unknown:
        raise HarnessError(f"unknown task or probe {', '.join(map(repr, unknown))}; valid: {', '.join(valid)} "
                           "(name them with --tasks)")
    forgetting = _composed()["forgetting"]
    probes: dict[str, Callable[[], Need]] = {
        "general_text": lambda: _general_text(forgetting["general_text"]),
        "general_suite": lambda: _general_suite(forgetting["general_suite"]),
        "kl_drift": lambda: Need("kl_drift", "probe", [], lambda data_dir: None),  # fixed prompts, no data
    }
    tasks = set(task_names())
    return [_task_need(n) if n in tasks else probes[n]() for n in wanted]
