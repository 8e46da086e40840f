"""wandb, offline: one run per harness run, grouped by sweep, tagged, holding the numbers the
parquet tables hold (every final metric row and the cost columns)."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
import wandb

from harness.config.run_config import WandbConfig, check_options
from harness.core.errors import HarnessError
from harness.run.tracking import COST_COLUMNS, Tracker, check_config

WANDB = WandbConfig(enabled=True, mode="offline", project="peft-harness-test", entity=None)


def _row(status: str = "finished") -> dict:
    costs = {c: i + 0.5 if c.endswith(("_s", "_pct")) else i + 1 for i, c in enumerate(COST_COLUMNS)}
    return {"run_id": "abc123", "status": status, "error": None, "stop_reason": "max_steps", **costs}


METRICS = [
    {"task": "gsm8k", "metric": "exact_match_flexible", "value": 0.25, "stderr": 0.1, "n": 4, "step": None},
    {"task": "forgetting/general_text", "metric": "forgetting_ce_delta", "value": 0.01, "stderr": None, "n": 2, "step": None},
    {"task": "gsm8k", "metric": "train_loss", "value": 2.0, "stderr": None, "n": 1, "step": 1},
]


def _records(raw: bytes) -> list:
    """The protobuf records of a `.wandb` file. wandb >= 0.19 ships no Python reader; the file is a
    7-byte `:W&B` header, then the LevelDB log format: 32 KiB blocks of chunks (crc32, length, type),
    where a record too long for its block continues in the next one (FIRST, MIDDLE..., LAST)."""
    from wandb.proto import wandb_internal_pb2

    block, pos, records, pending = 32768, 7, [], b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _logged_items(raw: bytes) -> tuple[dict, set]:
    """(key -> last summary value, history keys) of a `.wandb` file."""
    summary, history = {}, set()
    for record in _records(raw):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            history.update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return summary, history


def test_offline_run_holds_the_parquet_numbers(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    tracker = Tracker(WANDB, "abc123", "smoke", ["lora", "tiny-random-llama", "gsm8k", "smoke"], {"seed": 0}, str(tmp_path))
    tracker.log({"train/loss": 2.0}, step=1)
    tracker.finish(_row(), METRICS)
    wandb.teardown()  # the wandb-core service writes the log file asynchronously; teardown waits until it is flushed
    (run_file,) = tmp_path.glob("wandb/offline-run-*-abc123/run-abc123.wandb")
    summary, history = _logged_items(run_file.read_bytes())
    assert "gsm8k/exact_match_flexible" in summary, sorted(summary)
    assert summary["gsm8k/exact_match_flexible"] == 0.25 and summary["gsm8k/exact_match_flexible_n"] == 4
    assert summary["forgetting/general_text/forgetting_ce_delta"] == 0.01
    assert "gsm8k/train_loss" not in summary  # the curve is logged per step, not as a final value
    assert all(summary[f"cost/{c}"] == _row()[c] for c in COST_COLUMNS)
    assert summary["status"] == "finished" and summary["stop_reason"] == "max_steps"
    assert "train/loss" in history, sorted(history)
    raw = run_file.read_bytes()
    assert all(tag.encode() in raw for tag in ("smoke", "lora", "tiny-random-llama", "gsm8k"))


def test_online_without_credentials_is_a_config_error(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", "/nonexistent")
    monkeypatch.setenv("NETRC", "/nonexistent")
    with pytest.raises(HarnessError, match="wandb.mode=online needs WANDB_API_KEY"):
        check_config(dataclasses.replace(WANDB, mode="online"))
    with pytest.raises(HarnessError, match=r"^wandb.mode='nope' is invalid: it must be one of offline, online, disabled$"):
        check_options({"wandb": {"enabled": True, "mode": "nope"}})
    check_config(dataclasses.replace(WANDB, enabled=False, mode="online"))  # disabled: nothing to check
