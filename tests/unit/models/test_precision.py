"""model.dtype's resolution and the precision policy (harness/models/precision.py): auto is fp32 on
CPU, half-precision bases compute under autocast in their dtype and refuse a contradicting
train.precision, trainable tensors are cast to fp32, and a CPU run whose half-precision matmuls are
slower than fp32 here says so once."""

from __future__ import annotations

import pytest
import torch

from harness.core import notices
from harness.core.errors import HarnessError
from harness.costs.matmul_peak import matmul_flops_per_s
from harness.models import precision as prec
from harness.models.precision import Precision, keep_fp32, resolve_dtype

CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu_and_explicit_dtypes_stay():
    assert resolve_dtype("auto", CPU) == "fp32"
    assert [resolve_dtype(d, CPU) for d in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(HarnessError, match="^model.dtype='fp8' is unknown"):
        resolve_dtype("fp8", CPU)


def test_half_base_computes_under_autocast_in_its_dtype_on_cpu():
    p = Precision.of("bf16", CPU)
    weight, x = torch.randn(4, 4, dtype=torch.bfloat16), torch.randn(2, 4)  # fp32 activations meet bf16 weights
    with p.autocast():
        assert (x @ weight).dtype == torch.bfloat16
    assert Precision.of("fp32", CPU).autocast_dtype is None  # fp32 on CPU: no autocast, as before
    assert Precision.of("bf16", CPU, "bf16").base == torch.bfloat16


def test_a_precision_contradicting_the_base_dtype_is_one_line():
    with pytest.raises(HarnessError, match=r"^train.precision=fp32 contradicts model.dtype=bf16: .*set train.precision=auto"):
        Precision.of("bf16", CPU, "fp32")


def test_keep_fp32_casts_only_what_it_is_given():
    trained, frozen = (torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16)) for _ in range(2))
    assert keep_fp32([trained]) == 1 and keep_fp32([trained]) == 0
    assert trained.dtype == torch.float32 and frozen.dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_a_slower_half_precision_on_this_cpu_is_said_once(dtype, capsys, monkeypatch):
    monkeypatch.setattr(notices, "_SHOWN", set())  # earlier tests in this process may have shown it
    prec.slower_half_notice(Precision.of(dtype, CPU), CPU)
    out = capsys.readouterr().out
    slowdown = matmul_flops_per_s(torch.float32, CPU, 512, 0.05) / matmul_flops_per_s(prec.DTYPES[dtype], CPU, 512, 0.05)
    assert (f"model.dtype={dtype} on this CPU: its matmuls run" in out) == (slowdown > 1.2)
