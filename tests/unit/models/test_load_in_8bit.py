"""`model.load_in_8bit`: 8-bit base weights through bitsandbytes on CUDA, refused in one line
anywhere else. This machine has no GPU (and no bitsandbytes), so only the refusals are tested here;
the quantizing path (harness/models/loading.py quantize_8bit) needs a CUDA run."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.models import loading
from harness.models.spec import ModelSpec
from harness.run.prepare import prepare
from tests.conftest import run_cli

TINY = ["model=tiny-random-llama", "method=lora", "budget=smoke", "forgetting.probes=[]", "forgetting.target_gain=false"]


def test_8bit_base_on_a_cpu_is_refused_before_anything_loads(test_data):
    cfg = preflight._compose([*TINY, f"data.dir={test_data}", "data.order=[local]", "model.load_in_8bit=true", "device=cpu"])
    OmegaConf.resolve(cfg)
    with pytest.raises(HarnessError) as err:
        prepare(cfg)
    message = str(err.value)
    assert message.startswith("model.load_in_8bit=true needs a CUDA GPU and bitsandbytes") and "\n" not in message
    assert "this run has device cpu" in message and "model.load_in_8bit=false" in message


def test_the_cli_stops_with_the_line_and_writes_no_rows(tmp_path, test_data):
    proc = run_cli([*TINY, "model.load_in_8bit=true"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)}, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: model.load_in_8bit=true needs a CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or pd.read_parquet(tmp_path / "runs").empty


def test_the_other_rules_of_an_8bit_base(monkeypatch):
    cuda = torch.device("cuda")
    causal = {"name": "m", "source": "hub", "hub_id": "org/m", "dtype": "auto", "load_in_8bit": True}
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if not has_bnb:  # a CUDA device alone is not enough
        with pytest.raises(HarnessError, match="this run has device cuda and no bitsandbytes"):
            loading.check_8bit(ModelSpec.of(causal), cuda, merge_adapters=False)
        real = importlib.util.find_spec
        monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: object() if name == "bitsandbytes" else real(name))
    with pytest.raises(HarnessError, match="set eval.merge_adapters=false"):
        loading.check_8bit(ModelSpec.of(causal), cuda, merge_adapters=True)
    with pytest.raises(HarnessError, match="is for causal LMs"):
        loading.check_8bit(ModelSpec.of({**causal, "kind": "encoder"}), cuda, merge_adapters=False)
    loading.check_8bit(ModelSpec.of(causal), cuda, merge_adapters=False)  # what a CUDA run with bitsandbytes accepts
    loading.check_8bit(ModelSpec.of({**causal, "load_in_8bit": False}), torch.device("cpu"), merge_adapters=True)  # off: no rule
