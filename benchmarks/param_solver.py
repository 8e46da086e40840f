"""Time the parameter-budget solver: how long choosing each method's size knob takes, and how many
candidate values it applied to a copy of the base model (the preflight pays this once per job).

    python benchmarks/param_solver.py                                   # tiny-random-llama, 0.25 %
    python benchmarks/param_solver.py --model smollm2-135m --pct 0.5 --methods lora dora series_adapter
"""

from __future__ import annotations

import argparse
import time

import yaml

from harness.budget import param_budget
from harness.core.paths import CONF_DIR

DEFAULT = ["lora", "dora", "vera", "series_adapter", "prompt_tuning", "hra", "paca", "fourierft", "lisa", "ia3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random-llama")
    parser.add_argument("--pct", type=float, default=0.25, help="target, percent of the base model's parameters")
    parser.add_argument("--methods", nargs="+", default=DEFAULT)
    args = parser.parse_args()
    model_cfg = yaml.safe_load((CONF_DIR / "model" / f"{args.model}.yaml").read_text())
    start = time.perf_counter()
    target = param_budget.resolve_target(None, args.pct, model_cfg, CONF_DIR)
    print(f"{args.model}: base model loaded in {time.perf_counter() - start:.2f} s; target {target:,} params")
    print(f"{'method':16} {'knob':>20} {'achieved':>12} {'error':>8} {'probes':>6} {'seconds':>8}")
    for name in args.methods:
        before, start = len(param_budget._COUNTS), time.perf_counter()
        s = param_budget.solve({"name": name}, model_cfg, CONF_DIR, target, 0.05, seed=0)
        elapsed, probes = time.perf_counter() - start, len(param_budget._COUNTS) - before
        knob = f"{s.knob}={s.value}" if s.knob else "(fixed)"
        print(f"{name:16} {knob:>20} {s.achieved:>12,} {s.relative_error:>+8.1%} {probes:>6} {elapsed:>8.2f}"
              + ("" if s.feasible else "  rejected"))


if __name__ == "__main__":
    main()
