"""Time `python -m harness.report` on results folders of N synthetic runs (default N = 1000, 10000),
in two shapes: few configurations with many seeds (10 methods, N/10 seeds each) and many
configurations with few seeds (N/4 configurations: 10 methods x N/40 learning rates, 4 seeds each).
Prints the wall seconds of each report (target <= 15 s at N = 10,000) and its figure and table sizes.

    python benchmarks/report_scale.py                       # N = 1000, 10000, both shapes
    python benchmarks/report_scale.py --n 1000 --keep /tmp/report_scale   # keep the folders
    python benchmarks/report_scale.py --keep /tmp/report_scale --code ../old   # the report of another checkout

The runs are written through the real ResultStore write path: every runs column and every metric
row (final metrics and the training-loss curve) of a real finished tiny-random-llama smoke run,
made first (~40 s), with run_id, method, seed, lr (in config_json too: it makes the variant) and the
metric values varied. Folders are built once per (N, shape) under --keep and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import template_run  # noqa: E402
from harness.store.result_store import ResultStore  # noqa: E402

METHODS = ["lora", "pissa", "dora", "ia3", "vera", "adalora", "loha", "lokr", "boft", "prefix_tuning"]
TEMPLATE_RUN = ["+sweep=smoke", "method=lora", "seed=0", *template_run.TINY[2:]]


def template(scratch: Path) -> tuple[dict, list[dict]]:
    """A real finished runs row and all its metric rows, from a tiny real run made now (kept in `scratch`)."""
    row, metrics = template_run.finished_run(template_run.make(scratch / "template", TEMPLATE_RUN))
    return row, [template_run.plain_row(m) for m in metrics.to_dict("records")]


def synthetic(row: dict, metrics: list[dict], i: int, configs: int, n: int) -> tuple[dict, list[dict]]:
    """Run i of n: configuration i % configs (a method and an lr), seed i // configs; values jittered."""
    rng = random.Random(i)
    config = i % configs
    method, lr = METHODS[config % len(METHODS)], round(1e-4 * (1 + config // len(METHODS)), 8)
    seed = i // configs
    cfg = json.loads(row["config_json"])
    cfg.update(seed=seed, method={**cfg["method"], "name": method})
    cfg["train"] = {**cfg["train"], "lr": lr, "data_seed": seed, "init_seed": seed}
    run = {**row, "run_id": hashlib.sha256(f"synthetic-{n}-{configs}-{i}".encode()).hexdigest()[:16], "method": method,
           "seed": seed, "data_seed": seed, "init_seed": seed, "lr": lr, "config_json": json.dumps(cfg, sort_keys=True),
           "trainable_params": row["trainable_params"] * (1 + config % 7), "train_time_s": rng.uniform(1, 100),
           "peak_mem_bytes": int(row["peak_mem_bytes"] * rng.uniform(0.5, 2))}
    # each configuration its own effect on each metric (the same for all its seeds), plus per-run noise
    effect = {(m["task"], m["metric"]): random.Random(f"{config}/{m['task']}/{m['metric']}").gauss(0.0, 0.01) for m in metrics}
    return run, [{**m, "value": (m["value"] or 0.0) + effect[m["task"], m["metric"]] + rng.gauss(0.0, 0.003)}
                 for m in metrics]


def build(root: Path, n: int, configs: int, row: dict, metrics: list[dict]) -> None:
    if (root / "complete").is_file():
        return
    start = time.perf_counter()
    store = ResultStore(root)
    for i in range(n):
        store.write(*synthetic(row, metrics, i, configs, n))
    store.compact()
    (root / "complete").write_text("")
    print(f"  built {root} ({n} runs, {configs} configurations) in {time.perf_counter() - start:.0f} s", flush=True)


def report(root: Path, out: Path, timeout: float, code: Path) -> str:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.report", str(root), "--out", str(out)], cwd=code,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"{time.perf_counter() - start:7.1f} s  STOPPED (--timeout)"
    took = time.perf_counter() - start
    if proc.returncode != 0:
        return f"{took:7.1f} s  FAILED: {(proc.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    pngs = sorted(out.glob("*.png"))
    tallest = max((_png_size(p) for p in pngs), key=lambda s: s[1], default=(0, 0))
    comparisons = out / f"{pngs[0].stem.split('_')[0]}_comparisons.csv" if pngs else None
    pairs = sum(1 for _ in open(comparisons)) - 1 if comparisons and comparisons.is_file() else 0
    return f"{took:7.1f} s  {len(pngs)} figures (largest {tallest[0]}x{tallest[1]} px), {pairs} paired comparisons"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[16:24]
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="1000,10000", help="comma-separated numbers of runs")
    parser.add_argument("--shapes", default="seeds,configs", help="few configurations (seeds), many (configs), or both")
    parser.add_argument("--keep", type=Path, help="build the folders here and keep them (default: a temp folder)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a report is stopped")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="run the report of this checkout (e.g. a `git worktree` of an older commit: the time before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report_scale_") as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        row, metrics = template(scratch)
        print(f"report_scale: load avg {os.getloadavg()[0]:.2f}", flush=True)
        for n in (int(x) for x in args.n.split(",")):
            for shape in args.shapes.split(","):
                configs = len(METHODS) if shape == "seeds" else max(len(METHODS), n // 4)
                root = scratch / f"{shape}{n}"
                build(root, n, configs, row, metrics)
                line = report(root, scratch / f"{shape}{n}_report", args.timeout, args.code)
                print(f"N={n:6d} {configs:5d} configurations: {line}  (load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
