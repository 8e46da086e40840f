"""Evaluation over the ranks of a run: the same LoRA run under `torchrun --nproc_per_node 2`
(ddp, gloo on CPU, one torch thread per rank as torchrun sets it) with `eval.shard_over_ranks=false`
(rank 0 evaluates every item while rank 1 waits) and `=true` (each rank scores its share, rank 0
gathers). Prints each run's eval_time_s (the runs row), the speed-up, and whether the two agree
(metrics and per-item predictions). Two phases, one per kind of model work:

  * gsm8k: greedy generation (the task's prompt, stop strings, `--max-new-tokens`) and the
    teacher-forced answer cross-entropy, on the first `--gsm8k-items` test items;
  * mmlu: 0-shot log-likelihood over " A".." D" on the first `--mmlu-items` test items of each of
    `--mmlu-subjects` subjects.

The forgetting probes and the latency rows (rank 0's in either setting) are off, so eval_time_s is
the task's evaluation. Each run trains one step first. Wall times depend on what else runs on the
machine: the load average is printed with them.

    python benchmarks/sharded_eval.py                               # SmolLM2-135M, data from $HARNESS_DATA_DIR
    python benchmarks/sharded_eval.py --model tiny-random-llama --gsm8k-items 8 --mmlu-items 2
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.store.result_store import ResultStore  # noqa: E402

COMMON = ["method=lora", "budget=smoke", "budget.max_steps=1", "train.batch_size=2", "train.strategy=ddp",
          "forgetting.probes=[]", "forgetting.target_gain=false", "eval.latency_tokens=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(results: Path, overrides: list[str], shard: bool) -> tuple[float, dict, list]:
    """One torchrun of the run; (eval_time_s, task metrics, per-item predictions and values)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), "-m", "harness", f"results_dir={results}", *COMMON, *overrides,
                           f"eval.shard_over_ranks={str(shard).lower()}"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    store = ResultStore(results)
    runs, metrics, _ = store.read()
    row = runs.iloc[0]
    if row["status"] != "finished":
        sys.exit(f"run {row['run_id']} {row['status']}: {row['error']}")
    task = metrics[(metrics["task"] != "cost") & (metrics["metric"] != "train_loss")]
    samples = store.read_samples().sort_values(["task", "metric", "item_id"])
    print(f"    shard_over_ranks={str(shard).lower():5} eval {row['eval_time_s']:7.1f} s  "
          f"(load avg {load:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)
    return (float(row["eval_time_s"]), dict(zip(task["metric"], task["value"])),
            list(zip(samples["item_id"], samples["prediction"], samples["value"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--gsm8k-items", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--mmlu-subjects", type=int, default=4)
    parser.add_argument("--mmlu-items", type=int, default=40)
    args = parser.parse_args()
    from harness.tasks.mmlu import SUBJECTS

    subjects = ",".join(list(SUBJECTS)[: args.mmlu_subjects])
    phases = {
        "gsm8k (generation + answer CE)": ["task=gsm8k", f"task.n_eval={args.gsm8k_items}",
                                           f"task.max_new_tokens={args.max_new_tokens}"],
        "mmlu 0-shot (log-likelihood)": ["task=mmlu", f"task.subjects=[{subjects}]", f"task.n_eval={args.mmlu_items}"],
    }
    with tempfile.TemporaryDirectory(prefix="sharded-eval-") as tmp:
        for n, (phase, overrides) in enumerate(phases.items()):
            print(f"{phase}, {args.model}, 2 ranks:", flush=True)
            alone, metrics_alone, items_alone = run(Path(tmp) / f"{n}-alone", [f"model={args.model}", *overrides], False)
            shared, metrics_shared, items_shared = run(Path(tmp) / f"{n}-shared", [f"model={args.model}", *overrides], True)
            same_items = [(i, p) for i, p, _ in items_alone] == [(i, p) for i, p, _ in items_shared]
            worst = max((abs(a - b) for (_, _, a), (_, _, b) in zip(items_alone, items_shared)), default=0.0)
            drift = max(abs(metrics_alone[k] - metrics_shared[k]) for k in metrics_alone)
            print(f"  speed-up {alone / shared:.2f}x; {len(items_alone)} item scores, predictions "
                  f"{'identical' if same_items else 'DIFFERENT'}, max |d value| {worst:.1e}, "
                  f"max |d metric| {drift:.1e} over {len(metrics_alone)} metrics", flush=True)


if __name__ == "__main__":
    main()
