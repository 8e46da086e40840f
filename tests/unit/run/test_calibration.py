"""Calibration on general text (CorDA's `calibration_data: general_text`): the windows it reads, the
adapters they give, and the CLI run that records where the text came from."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import methods
from harness.config.run_config import GeneralTextConfig
from harness.data.sources import DataMissing
from harness.run.calibration import load_general_text, text_batches
from harness.store.result_store import ResultStore
from methods._core.base import BuildContext
from tests.conftest import run_cli

TEXT_CFG = GeneralTextConfig(hub={"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "test"},
                             local_file="wikitext2/test.txt", max_chars=20000, n_chunks=16, chunk_tokens=256, batch_size=8)


def _local(test_data) -> dict:
    return {"dir": str(test_data), "order": ["local"]}


def test_general_text_comes_from_the_data_dir_with_its_identity(test_data):
    text = load_general_text(TEXT_CFG, _local(test_data))
    assert len(text.text) == 20000 and text.identity["source"] == "local"
    assert text.identity["content_hash"] == load_general_text(TEXT_CFG, _local(test_data)).identity["content_hash"]
    shorter = load_general_text(dataclasses.replace(TEXT_CFG, max_chars=10000), _local(test_data))
    assert shorter.identity["content_hash"] != text.identity["content_hash"]


def test_missing_general_text_names_the_sources_tried(tmp_path):
    with pytest.raises(DataMissing, match=r"calibration on general text .*local: .*wikitext2/test.txt"):
        load_general_text(TEXT_CFG, {"dir": str(tmp_path), "order": ["local"]})


def test_text_batches_are_seeded_windows_of_the_text(tiny_model, test_data):
    tok = tiny_model().tokenizer
    text = load_general_text(TEXT_CFG, _local(test_data)).text
    first = [next(text_batches(tok, text, 32, 4, seed=1)) for _ in range(2)]
    other = next(text_batches(tok, text, 32, 4, seed=2))
    assert first[0]["input_ids"].shape == (4, 32) and bool(first[0]["attention_mask"].all())
    assert torch.equal(first[0]["input_ids"], first[1]["input_ids"])  # same seed, same order
    assert not torch.equal(first[0]["input_ids"], other["input_ids"])
    assert torch.equal(first[0]["labels"], first[0]["input_ids"])  # loss on every token
    ids = tok(text, add_special_tokens=False)["input_ids"]
    windows = {tuple(ids[i : i + 32]) for i in range(0, len(ids) - 31, 32)}
    assert all(tuple(row.tolist()) in windows for row in first[0]["input_ids"])


def test_corda_calibrated_on_general_text_starts_at_the_base_with_other_adapters(tiny_model, test_data):
    text = load_general_text(TEXT_CFG, _local(test_data)).text
    ids = torch.randint(0, 500, (2, 10), generator=torch.Generator().manual_seed(0))

    def build(stream_of):
        loaded = tiny_model()
        with torch.no_grad():
            base = loaded.model(input_ids=ids).logits
        method = methods.build({"name": "corda", "mode": "kpm", "r": 4, "alpha": 4.0, "calibration_batches": 2,
                                "calibration_data": "general_text"})
        method.calibrate(loaded.model, stream_of(loaded.tokenizer))
        torch.manual_seed(0)
        model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ids).logits, base, atol=1e-4, rtol=1e-4)
        return torch.cat([m.lora_A["default"].weight.flatten() for m in model.modules()
                          if hasattr(m, "lora_A") and "default" in m.lora_A])

    on_text = build(lambda tok: text_batches(tok, text, 32, 2, seed=1))
    on_other_text = build(lambda tok: text_batches(tok, text, 32, 2, seed=5))
    assert not torch.allclose(on_text, on_other_text, atol=1e-3)  # the calibration data shapes the adapters


def test_unknown_calibration_data_is_refused():
    with pytest.raises(Exception, match=r"method.calibration_data='wiki'"):
        methods.build({"name": "corda", "calibration_data": "wiki"})


def test_cli_corda_kpm_on_general_text_records_the_text_and_without_it_writes_nothing(tmp_path, test_data):
    args = ["model=tiny-random-llama", "method=corda", "method.mode=kpm", "method.calibration_data=general_text",
            "method.calibration_batches=2", "budget=smoke", "task.n_eval=2", "forgetting.probes=[]",
            "forgetting.target_gain=false", "eval.latency_tokens=0"]
    no_text = tmp_path / "data"  # the task's data, but no WikiText-2
    no_text.mkdir()
    (no_text / "gsm8k").symlink_to(test_data / "gsm8k")
    missing = run_cli([*args, "data.order=[local]"], tmp_path / "missing", {"HARNESS_DATA_DIR": str(no_text)})
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert "calibration on general text" in missing.stderr and not (tmp_path / "missing" / "runs").exists()

    proc = run_cli(args, tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = ResultStore(tmp_path).read()[0]
    assert list(runs.status) == ["finished"] and runs.calibration_time_s[0] > 0
    calibration = json.loads(runs.data_json[0])["calibration"]
    assert calibration["source"] == "local" and calibration["data"] == "general_text"
    assert json.loads(runs.config_json[0])["method"]["calibration_data"] == "general_text"
