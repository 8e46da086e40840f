"""Training throughput, model-FLOPs utilisation (MFU) and peak memory of LoRA and full fine-tuning
under each memory and speed switch: base dtype, activation checkpointing, packing, micro-batch size.

    python benchmarks/gpu_throughput.py                       # GPU: qwen2.5-0.5b-random and llama-3.2-1b-random
    python benchmarks/gpu_throughput.py --device cpu          # CPU: smollm2-135m, 3 timed steps per row
    python benchmarks/gpu_throughput.py --models tiny-random-llama --device cpu --steps 2   # a smoke run

Every row trains through the harness's own components (load_model, the method registry,
ready_to_train, batch_stream, train) on real GSM8K training pairs (HARNESS_DATA_DIR, else the
vendored tests/data) cut at --seq-len tokens, so the lengths and hence the padding are real.
Tokens are real (non-padding) tokens. MFU = analytic model FLOPs per token (harness/costs/flops.py:
4N + 2 N_trainable, recomputation under checkpointing not counted) x tokens/s, divided by the peak
of the compute dtype: on a GPU from a table of known cards, on a CPU measured here with square
matmuls (harness/costs/matmul_peak.py). Peak memory: max allocated on CUDA, peak RSS on CPU.
The first --warmup steps of each row are not timed.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import methods
from harness.budget.spec import GIB, Budget
from harness.core.paths import CONF_DIR
from harness.costs.flops import flops_per_token
from harness.costs.footprint import PeakMemory
from harness.costs.matmul_peak import matmul_flops_per_s
from harness.models.loading import load_model
from harness.models.precision import DTYPES, Precision
from harness.tasks import from_conf
from harness.train.batching import batch_counts, batch_stream, without_kv_cache
from harness.train.encoding import encode_pairs
from harness.train.loop import StepOptions, train
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext

REPO = Path(__file__).resolve().parents[1]
# Dense (no sparsity) tensor-core peaks in FLOP/s, from the vendors' data sheets; the first name
# contained in torch.cuda.get_device_name() wins, so the more specific names come first.
GPU_PEAKS = (
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}),
    ("A10", {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}),
)


@dataclass(frozen=True)
class Switches:
    dtype: str  # model.dtype of the frozen base
    checkpointing: bool
    packing: bool
    micro_batch: int

    def label(self) -> str:
        return (f"{self.dtype:<4} ckpt={'on ' if self.checkpointing else 'off'} "
                f"pack={'on ' if self.packing else 'off'} mb={self.micro_batch}")


def grid(device: torch.device, micro_batches: list[int]) -> list[Switches]:
    """Today's defaults first (fp32 base, padded batches), then one switch at a time, then together."""
    half = "bf16"
    small, large = micro_batches[0], micro_batches[-1]
    rows = [Switches("fp32", False, False, small), Switches(half, False, False, small),
            Switches(half, True, False, small), Switches(half, False, True, small), Switches(half, True, True, small)]
    rows += [Switches(half, ckpt, True, mb) for mb in micro_batches[1:] for ckpt in (False, True)]
    if device.type == "cuda":
        rows.append(Switches("fp32", True, True, large))
    return rows


def training_items(tokenizer, seq_len: int, data_dir: str) -> list[tuple[list[int], list[int]]]:
    task = from_conf("gsm8k")
    data = task.load({"dir": data_dir, "order": ["local"]})
    pairs = [task.training_pair(x) for x in data.train]
    return [(ids + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id])
            for ids, labels in encode_pairs(tokenizer, pairs, seq_len - 1)]


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    name = {v: k for k, v in DTYPES.items()}[dtype]
    if device.type == "cuda":
        card = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAKS:
            if key in card:
                return peaks[name], f"{card} data sheet"
        return float("nan"), f"{card} (not in GPU_PEAKS)"
    return matmul_flops_per_s(dtype, device, 2048, 1.0), "measured 2048^3 matmuls"


def measure(model_name: str, method_name: str, s: Switches, items, device: torch.device, steps: int,
            warmup: int) -> dict:
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{model_name}.yaml").read_text())
    loaded = load_model(cfg, CONF_DIR, dtype=s.dtype)
    method = methods.build({"name": method_name})
    torch.manual_seed(0)
    model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    ready_to_train(model, method, s.checkpointing)
    model.to(device)
    trainable = sum(p.numel() for p in method.trainable_parameters(model))
    per_token = flops_per_token(model, trainable, zeroth_order=False)
    precision = Precision.of(s.dtype, device)
    counts: list[int] = []
    pad_id = loaded.tokenizer.pad_token_id

    def counted():
        for batch in batch_stream(items, s.micro_batch, pad_id, 0, packing=s.packing):
            counts.append(batch_counts(batch)[0])
            yield batch

    stamps: list[float] = []

    def on_step(*_):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    with PeakMemory(device) as peak, without_kv_cache(model, s.packing):
        train(model, method, counted(), StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='auto'),
              1e-5, Budget("bench", max_steps=warmup + steps), device, 1.0, on_step=on_step, precision=precision)
    tokens = sum(counts[warmup : warmup + steps])
    tokens_per_s = tokens / (stamps[-1] - stamps[warmup - 1])
    compute = precision.autocast_dtype or precision.base
    peak_flop_s, source = peak_flops(device, compute)
    del model, loaded, method
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"tokens_per_s": tokens_per_s, "mfu": tokens_per_s * per_token / peak_flop_s,
            "peak_gib": peak.peak_bytes / GIB, "peak_source": source, "compute": compute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    parser.add_argument("--models", default=None, help="comma-separated conf/model names")
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--micro-batches", default=None, help="comma-separated micro-batch sizes (first: the baseline's)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"  # no progress bars between the table's rows
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    models = (args.models or ("qwen2.5-0.5b-random,llama-3.2-1b-random" if gpu else "smollm2-135m")).split(",")
    micro = [int(m) for m in (args.micro_batches or ("8,16,32" if gpu else "8,16")).split(",")]
    steps = args.steps or (10 if gpu else 3)
    data_dir = os.environ.get("HARNESS_DATA_DIR") or str(REPO / "tests" / "data")
    print(f"device {torch.cuda.get_device_name(device) if gpu else 'cpu'} ({torch.get_num_threads()} threads); "
          f"GSM8K train pairs from {data_dir}, <= {args.seq_len} tokens; {steps} timed steps per row")
    print(f"{'model':<22} {'method':<6} {'switches':<34} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9}  compute")
    for model_name in models:
        tok = load_model(yaml.safe_load((CONF_DIR / "model" / f"{model_name}.yaml").read_text()), CONF_DIR).tokenizer
        items = training_items(tok, args.seq_len, data_dir)
        for method_name in args.methods.split(","):
            for switches in grid(device, micro):
                try:
                    r = measure(model_name, method_name, switches, items, device, steps, args.warmup)
                except torch.OutOfMemoryError:
                    print(f"{model_name:<22} {method_name:<6} {switches.label():<34} {'out of memory':>10}", flush=True)
                    torch.cuda.empty_cache()
                    continue
                print(f"{model_name:<22} {method_name:<6} {switches.label():<34} {r['tokens_per_s']:>10,.0f} "
                      f"{r['mfu']:>7.1%} {r['peak_gib']:>9.2f}  {str(r['compute']).removeprefix('torch.')} "
                      f"(peak: {r['peak_source']})", flush=True)


if __name__ == "__main__":
    main()
