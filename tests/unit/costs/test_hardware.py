"""The hardware a run ran on: filled on CPU here, and on a GPU as torch reports it (mocked: no GPU here)."""

from __future__ import annotations

import types

import torch

from harness.costs import hardware as hw


def test_cpu_run_records_cpu_threads_and_no_gpu():
    info = hw.hardware(torch.device("cpu"))
    assert info["device_type"] == "cpu" and info["gpu_count"] == 0 and info["gpus"] == []
    assert info["cpu_model"] and info["cpu_count"] >= 1
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["driver"] is None and info["cuda"] is None
    assert hw.gpu_hours(3600.0, info) is None
    assert hw.hardware_key(info) == f"cpu: {info['cpu_model']} ({info['torch_threads']} threads)"


def test_gpu_run_records_the_card_driver_and_gpu_hours(monkeypatch):
    props = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_045_493_760, major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(hw, "nvidia_driver", lambda: "570.86.15")
    info = hw.hardware(torch.device("cuda"))
    assert info["gpus"] == [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_045_493_760, "capability": "9.0"}]
    assert info["gpu_count"] == 1 and info["driver"] == "570.86.15" and info["cuda"] == "12.8"
    assert hw.gpu_hours(1800.0, info) == 0.5
    assert hw.hardware_key(info) == "1x NVIDIA H100 80GB HBM3"
