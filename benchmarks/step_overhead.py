"""Time one training step through the harness against a bare hand-written PEFT loop.

Same model, same method (through the same registry), same batch, same optimizer and schedule;
the only difference is the harness's loop (budget checks, NaN guard, hooks, progress bar).
Prints the median step time of each and their ratio (target: harness / bare <= 1.03).

    python benchmarks/step_overhead.py                    # SmolLM2-135M, LoRA r8, 4 x 128 tokens
    python benchmarks/step_overhead.py --model tiny-random-llama --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml
from transformers import get_cosine_schedule_with_warmup

import methods
from harness.budget.spec import Budget
from harness.core.paths import CONF_DIR
from harness.models.loading import load_model
from harness.train.loop import StepOptions, train
from methods._core.base import BuildContext


def build(model_name: str, method_name: str):
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{model_name}.yaml").read_text())
    loaded = load_model(cfg, CONF_DIR)
    method = methods.build({"name": method_name})
    torch.manual_seed(0)
    return method, method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))


def bare_steps(model, batch, steps: int, lr: float) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    sched = get_cosine_schedule_with_warmup(opt, 0, steps)
    times = []
    model.train()
    for _ in range(steps):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        float(loss.detach())  # the harness reads the loss each step too
        times.append(time.perf_counter() - start)
    return times


def harness_steps(model, method, batch, steps: int, lr: float) -> list[float]:
    times, last = [], [time.perf_counter()]

    def on_step(step, loss, cur_lr):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    cfg = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='auto')
    last[0] = time.perf_counter()
    train(model, method, iter(lambda: batch, None), cfg, lr, Budget("bench", max_steps=steps), torch.device("cpu"), 1.0,
          on_step=on_step)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--method", default="lora")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternate bare/harness this many times")
    args = ap.parse_args()

    method, model = build(args.model, args.method)
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (args.batch, args.seq))
    batch = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    bare_steps(model, batch, 2, 1e-5)  # warm-up: allocator, kernels
    bare, ours = [], []
    for _ in range(args.rounds):  # alternate so drift in machine load hits both alike
        bare += bare_steps(model, batch, args.steps, 1e-5)[1:]
        ours += harness_steps(model, method, batch, args.steps, 1e-5)[1:]
    b, h = statistics.median(bare), statistics.median(ours)
    print(f"model={args.model} method={args.method} batch={args.batch}x{args.seq} tokens, {len(bare)} steps each")
    print(f"bare PEFT loop : {b * 1000:8.1f} ms/step (median)")
    print(f"harness loop   : {h * 1000:8.1f} ms/step (median)")
    print(f"ratio harness/bare = {h / b:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
