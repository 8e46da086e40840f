"""The result store: two tidy tables, `runs` and `metrics`, each a folder of parquet part files.

Every run writes its own parts, named by run id, atomically (temp file + rename), metrics first and
the runs row last: a runs row with status "finished" is the commit mark. Readers union the parts
and keep metrics only of finished runs, so a run killed half-way leaves nothing that is read, and
rerunning it rewrites the same file names: nothing is ever duplicated. Schema: README.md.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError

SCHEMA_VERSION = "1"

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("sweep", pa.string()), ("sweep_dir", pa.string()), ("job_dir", pa.string()),
    ("method", pa.string()), ("model", pa.string()), ("task", pa.string()), ("budget", pa.string()),
    ("seed", pa.int64()), ("lr", pa.float64()),
    ("trainable_params", pa.int64()), ("total_params", pa.int64()), ("trainable_pct", pa.float64()),
    ("adapter_bytes", pa.int64()), ("peak_mem_bytes", pa.int64()), ("peak_mem_kind", pa.string()),
    ("train_time_s", pa.float64()), ("train_steps", pa.int64()), ("train_tokens", pa.int64()),
    ("tokens_per_s", pa.float64()), ("stop_reason", pa.string()), ("eval_time_s", pa.float64()),
    ("device", pa.string()), ("config_json", pa.string()), ("data_json", pa.string()), ("model_json", pa.string()),
    ("versions_json", pa.string()), ("git_sha", pa.string()), ("git_dirty", pa.bool_()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("ended_at", pa.timestamp("us", tz="UTC")),
    ("harness_version", pa.string()), ("schema_version", pa.string()),
])

METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    ("stderr", pa.float64()), ("n", pa.int64()), ("higher_is_better", pa.bool_()),
    ("metric_version", pa.string()), ("step", pa.int64()),
])

# Per-item scores for error analysis and item-level statistics (optional: eval.log_samples).
SAMPLES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("item_id", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("prediction", pa.string()), ("reference", pa.string()),
])


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.metrics_dir = self.root / "metrics"
        self.samples_dir = self.root / "samples"

    def is_finished(self, run_id: str) -> bool:
        path = self.runs_dir / f"{run_id}.parquet"
        if not path.is_file():
            return False
        try:
            status = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        except Exception:  # an unreadable part is not a finished run: the rerun rewrites it
            return False
        return status == ["finished"]

    def write(self, run: dict, metrics: Iterable[dict] = (), samples: Iterable[dict] = ()) -> None:
        run = {**run, "schema_version": SCHEMA_VERSION}
        items = [{**s, "run_id": run["run_id"]} for s in samples]
        if items:
            _write_atomic(pa.Table.from_pylist(items, schema=SAMPLES_SCHEMA), self.samples_dir / f"{run['run_id']}.parquet")
        rows = [{**m, "run_id": run["run_id"]} for m in metrics]
        if rows:
            _write_atomic(pa.Table.from_pylist(rows, schema=METRICS_SCHEMA), self.metrics_dir / f"{run['run_id']}.parquet")
        _write_atomic(pa.Table.from_pylist([run], schema=RUNS_SCHEMA), self.runs_dir / f"{run['run_id']}.parquet")

    def _read_parts(self, folder: Path, schema: pa.Schema) -> tuple[pd.DataFrame, list[str]]:
        tables, bad = [], []
        for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            try:
                tables.append(pq.read_table(path, schema=schema))
            except Exception as exc:
                bad.append(f"{path} ({type(exc).__name__})")
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        return table.to_pandas(), bad

    def read(self, strict: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """(runs, metrics of finished runs, unreadable part files). With `strict`, unreadable parts
        raise a one-line error naming them; otherwise they are skipped and returned."""
        runs, bad_runs = self._read_parts(self.runs_dir, RUNS_SCHEMA)
        metrics, bad_metrics = self._read_parts(self.metrics_dir, METRICS_SCHEMA)
        bad = bad_runs + bad_metrics
        if bad and strict:
            raise HarnessError(
                f"unreadable result files: {', '.join(bad)}; delete them and rerun the sweep to recompute those runs"
            )
        finished = set(runs.loc[runs["status"] == "finished", "run_id"])
        metrics = metrics[metrics["run_id"].isin(finished)].reset_index(drop=True)
        return runs, metrics, bad

    def read_samples(self) -> pd.DataFrame:
        """Per-item rows of finished runs (empty when no run logged samples)."""
        runs, _, _ = self.read(strict=False)
        samples, bad = self._read_parts(self.samples_dir, SAMPLES_SCHEMA)
        if bad:
            raise HarnessError(f"unreadable sample files: {', '.join(bad)}; delete them and rerun those runs")
        finished = set(runs.loc[runs["status"] == "finished", "run_id"])
        return samples[samples["run_id"].isin(finished)].reset_index(drop=True)
