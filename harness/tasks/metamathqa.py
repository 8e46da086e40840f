"""MetaMathQA -> GSM8K (Yu et al., 2023, arXiv:2309.12284): train on MetaMathQA's `query` /
`response` pairs, evaluate on the GSM8K test set exactly as the `gsm8k` task does.

This is the protocol of HF PEFT's method comparison (whole of MetaMathQA, GSM8K test) and of the
PiSSA / SORSA papers (the first 100,000 MetaMathQA rows: `task.train_limit`). Evaluation, prompt
and metrics are the `gsm8k` task's (this class subclasses it); only the training pool differs.

Training pool (`task.train_pool`):
* `metamathqa`: sources tried in `data.order`: hub `meta-math/MetaMathQA`, or the release file
  from hf.co/datasets/meta-math/MetaMathQA in a local data dir
  (`<data.dir>/metamathqa/MetaMathQA-395K.json`); no package fallback.
* `gsm8k_train`: an explicit substitute for offline machines: the GSM8K training split. Such runs
  are filed under `metamathqa_gsm8k~gsm8k_train` (the `~` names the substitute pool), so they are
  never mistaken for the published protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.config.checks import option

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.data.layout import HubRequest, LocalDataset, json_file, read_json_rows
from harness.data.sources import first_available, hub_loader, read_local
from harness.tasks import register
from harness.tasks.base import TaskData
from harness.tasks.gsm8k import GSM8K, GSM8KConfig

TRAIN_POOLS = ("metamathqa", "gsm8k_train")
SUBSTITUTE_MARK = "~"  # task name suffix: `<task>~<substitute training pool>`


def _local_file(data_dir: str | None, relative: str):
    """The release file (a JSON array, or JSON Lines by suffix) under data.dir."""
    return lambda: read_local(data_dir, relative, read_json_rows)


def metamathqa_dataset(train_sources: Mapping[str, Any]) -> LocalDataset:
    """The MetaMathQA release file where `train_sources.local.file` puts it, from the hub's rows."""
    hub = train_sources["hub"]
    return LocalDataset("metamathqa", (json_file(train_sources["local"]["file"], HubRequest(hub["path"], hub.get("name"), hub["split"])),))


@dataclass(frozen=True)
class MetaMathQAConfig(GSM8KConfig):
    """metamathqa_gsm8k's options (conf/task/metamathqa_gsm8k.yaml): GSM8K's, and the training pool's:"""

    train_pool: str = option("text", choices=TRAIN_POOLS)
    """metamathqa (the protocol) | gsm8k_train (an offline substitute, filed as `<task>~gsm8k_train`)."""
    train_limit: int | None = option("int", low=1, nullable=True)
    """The first N training rows (PiSSA/SORSA: 100000); null: all."""
    train_sources: dict[str, Any]
    """Where the MetaMathQA pool comes from: `hub` (path, name, split), `local` (file under data.dir)."""


@register
class MetaMathQAGSM8K(GSM8K):
    name = "metamathqa_gsm8k"
    cfg: MetaMathQAConfig
    config_class = MetaMathQAConfig

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        pool = self.cfg.train_pool
        gsm8k = super().load(data_cfg)  # GSM8K eval items (and its train split, the substitute pool)
        # The GSM8K loader files its package fallback (a test-set slice) under another name; keep it.
        name = self.name if gsm8k.name == self.name else f"{self.name}[{gsm8k.name}]"
        if pool == "gsm8k_train":
            train, source = gsm8k.train, f"{gsm8k.identity['source']} (gsm8k train split)"
            name += SUBSTITUTE_MARK + pool
        else:
            source, rows = self._metamathqa(data_cfg)
            train = [{"question": r["query"], "answer": r["response"]} for r in rows]
        train = train[: self.cfg.train_limit]
        identity = {
            **gsm8k.identity, "task": name, "train_pool": pool, "train_source": source,
            "n_train_pool": len(train), "train_sha256": hash_object(train, 64),
        }
        return TaskData(name, train, gsm8k.eval, identity)

    def local_datasets(self) -> list[LocalDataset]:
        pool = [metamathqa_dataset(self.cfg.train_sources)] if self.cfg.train_pool == "metamathqa" else []
        return super().local_datasets() + pool  # gsm8k's files: its eval items, and the gsm8k_train pool

    def _metamathqa(self, data_cfg: Mapping[str, Any]) -> tuple[str, list[dict]]:
        sources = self.cfg.train_sources
        loaders = {
            "hub": hub_loader(sources["hub"]["path"], sources["hub"].get("name"), sources["hub"]["split"]),
            "local": _local_file(data_cfg.get("dir"), sources["local"]["file"]),
        }
        try:
            return first_available(f"task {self.name} (MetaMathQA training pool)", loaders, list(data_cfg["order"]))
        except HarnessError as exc:
            raise HarnessError(f"{exc}; or train on GSM8K train instead with task.train_pool=gsm8k_train "
                               f"(filed as {self.name}{SUBSTITUTE_MARK}gsm8k_train)") from None
