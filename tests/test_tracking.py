"""wandb, offline: one run per harness run, grouped by sweep, tagged, holding the numbers the
parquet tables hold (every final metric row and the cost columns)."""

from __future__ import annotations

import json
import re

import pytest

from harness.errors import HarnessError
from harness.tracking import COST_COLUMNS, Tracker, check_config

WANDB = {"enabled": True, "mode": "offline", "project": "peft-harness-test", "entity": None}


def _row(status: str = "finished") -> dict:
    costs = {c: i + 0.5 if c.endswith(("_s", "_pct")) else i + 1 for i, c in enumerate(COST_COLUMNS)}
    return {"run_id": "abc123", "status": status, "error": None, "stop_reason": "max_steps", **costs}


METRICS = [
    {"task": "gsm8k", "metric": "exact_match_flexible", "value": 0.25, "stderr": 0.1, "n": 4, "step": None},
    {"task": "forgetting/general_text", "metric": "forgetting_ce_delta", "value": 0.01, "stderr": None, "n": 2, "step": None},
    {"task": "gsm8k", "metric": "train_loss", "value": 2.0, "stderr": None, "n": 1, "step": 1},
]


def _logged_items(raw: bytes) -> dict:
    """key -> last value of the items in a `.wandb` file. wandb >= 0.19 ships no Python reader; its
    SummaryItem and HistoryItem records are protobuf messages with the key in field 1 and the JSON
    value in field 16, so `0x0a <len> key 0x82 0x01 <len> json` finds them (short keys and values)."""
    items = {}
    for m in re.finditer(rb"(?=\n([\x01-\x7f]))", raw):  # overlapping: a length byte may be 0x0a too
        start = m.start() + 2
        key, rest = raw[start:start + m.group(1)[0]], raw[start + m.group(1)[0]:]
        if rest[:2] == b"\x82\x01" and rest[2] < 0x80:
            try:
                items[key.decode()] = json.loads(rest[3:3 + rest[2]])
            except (UnicodeDecodeError, ValueError):
                continue
    return items


def test_offline_run_holds_the_parquet_numbers(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    tracker = Tracker(WANDB, "abc123", "smoke", ["lora", "tiny-random-llama", "gsm8k", "smoke"], {"seed": 0}, str(tmp_path))
    tracker.log({"train/loss": 2.0}, step=1)
    tracker.finish(_row(), METRICS)
    (run_file,) = tmp_path.glob("wandb/offline-run-*-abc123/run-abc123.wandb")
    summary = _logged_items(run_file.read_bytes())  # the summary is written last: its values win
    assert summary["gsm8k/exact_match_flexible"] == 0.25 and summary["gsm8k/exact_match_flexible_n"] == 4
    assert summary["forgetting/general_text/forgetting_ce_delta"] == 0.01
    assert "gsm8k/train_loss" not in summary  # the curve is logged per step, not as a final value
    assert all(summary[f"cost/{c}"] == _row()[c] for c in COST_COLUMNS)
    assert summary["status"] == "finished" and summary["stop_reason"] == "max_steps"
    raw = run_file.read_bytes()
    assert all(tag.encode() in raw for tag in ("smoke", "lora", "tiny-random-llama", "gsm8k", "train/loss"))


def test_online_without_credentials_is_a_config_error(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", "/nonexistent")
    monkeypatch.setenv("NETRC", "/nonexistent")
    with pytest.raises(HarnessError, match="wandb.mode=online needs WANDB_API_KEY"):
        check_config({**WANDB, "mode": "online"})
    with pytest.raises(HarnessError, match="wandb.mode='nope' is unknown"):
        check_config({**WANDB, "mode": "nope"})
    check_config({**WANDB, "enabled": False, "mode": "online"})  # disabled: nothing to check
