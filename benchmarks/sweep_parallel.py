"""The same 8-run sweep on tiny-random-llama with 1 worker (Hydra's basic launcher, torch's default
threads) and with N joblib workers (`+launcher=local_parallel`, cpu_count // N torch threads each),
each into a fresh results folder, then the same command again (every run skipped, caches warm).
Prints wall times, the speed-up (target >= 1.8x with 2 workers on 2 cores) and the rerun time.

    python benchmarks/sweep_parallel.py                 # 2 workers, 1 repeat
    python benchmarks/sweep_parallel.py --repeats 3     # alternates 1 / N workers, reports medians

Thread settings are the harness's own: OMP_NUM_THREADS / MKL_NUM_THREADS are removed from the
environment of the measured commands, so the lone worker uses every core through torch's threads;
`--threads-per-job 1` gives every job of both arms one thread instead (the launcher's own scaling).
Wall times depend on what else runs on the machine: the load average before and after each command
is printed with it. The commands run from a snapshot
of conf/, harness/ and methods/ taken at the start, so edits to the tree while the benchmark runs
cannot change run ids between the first command and its rerun.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.store.result_store import ResultStore  # noqa: E402

# lora, pissa x 4 seeds = 8 runs. The launcher is what is measured: the evaluation suites that
# smoke runs by default (general-capability suite, base-model task scores, latency) are left out.
SWEEP = ["+sweep=smoke", "seed=0,1,2,3", "forgetting.probes=[general_text]", "forgetting.target_gain=false",
         "eval.latency_tokens=0"]


def snapshot(target: Path) -> Path:
    for part in ("conf", "harness", "methods"):
        shutil.copytree(REPO / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def timed_sweep(code: Path, results: Path, workers: int, extra: list[str], threads: int | None) -> float:
    launcher = [] if workers == 1 else ["+launcher=local_parallel", f"hydra.launcher.n_jobs={workers}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads:  # the lone worker gets it from torch's environment, parallel workers from the harness's split
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(code)  # the snapshot's harness, not the (editable) installed one
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", f"results_dir={results}", *SWEEP, *launcher, *extra],
                          cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    runs, _, _ = ResultStore(results).read()
    if not (runs["status"] == "finished").all():
        sys.exit(f"runs failed:\n{runs.loc[runs['status'] != 'finished', ['run_id', 'error']]}")
    if len(runs) != 8:  # a rerun that ran instead of skipping: the config changed between the two commands
        sys.exit(f"{len(runs)} runs instead of 8: was conf/ edited during the benchmark? run it again")
    print(f"  workers={workers} {wall:7.1f} s  ({proc.stdout.count('[skip]')} skipped; "
          f"load avg {load:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads-per-job", type=int, default=None,
                        help="torch threads of every job in both arms (default: the harness's own: one lone "
                             "job uses all cores, N workers split them), to measure the launcher alone")
    parser.add_argument("extra", nargs="*", help="more overrides for every sweep, e.g. task.n_eval=2")
    args = parser.parse_args()
    print(f"8-run sweep {' '.join(SWEEP + args.extra)} on {os.cpu_count()} CPUs "
          f"(affinity {len(os.sched_getaffinity(0))}); 1 vs {args.workers} workers", flush=True)
    first: dict[int, list[float]] = {1: [], args.workers: []}
    rerun: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(prefix="sweep_parallel_") as tmp:
        code = snapshot(Path(tmp) / "code")
        for r in range(args.repeats):
            order = (1, args.workers) if r % 2 == 0 else (args.workers, 1)  # alternate against load drift
            for workers in order:
                results = Path(tmp) / f"r{r}_w{workers}"
                print(f"repeat {r + 1}: fresh results folder", flush=True)
                first[workers].append(timed_sweep(code, results, workers, args.extra, args.threads_per_job))
                print(f"repeat {r + 1}: same command again", flush=True)
                rerun[workers].append(timed_sweep(code, results, workers, args.extra, args.threads_per_job))
    seq, par = statistics.median(first[1]), statistics.median(first[args.workers])
    print(f"\nsweep wall time (median of {args.repeats}): 1 worker {seq:.1f} s, {args.workers} workers {par:.1f} s "
          f"-> speed-up {seq / par:.2f}x (target >= 1.8x)")
    for workers in (1, args.workers):
        print(f"rerun, all skipped, caches warm ({workers} worker(s)): {statistics.median(rerun[workers]):.1f} s "
              f"vs first run {statistics.median(first[workers]):.1f} s")


if __name__ == "__main__":
    main()
