"""Time the preflight of a sweep of tiny jobs as it grows, and the rerun of that sweep once every run
has finished: `+sweep=smoke 'seed=range(0,N/4)' 'method=lora,pissa,dora,ia3'` on tiny-random-llama.

    python benchmarks/preflight_scale.py                          # N = 400, 2000, 10000
    python benchmarks/preflight_scale.py --jobs 400 --before      # also the old per-job path
    python benchmarks/preflight_scale.py --jobs 10000 --rerun     # also the CLI rerun, all finished
    python benchmarks/preflight_scale.py --jobs 2000 --partial    # also the CLI rerun, all but one finished

`after` times `preflight.plan` in this process (what `python -m harness` calls before Hydra launches
anything): seconds, ms per job (target <= 20 at N = 10,000) and CPU ms per job (what the job costs
when other processes share the cores). `--before` times the path before issue 18 on the same jobs: a
full Hydra composition and an unmemoised `prepare` per job. `--rerun` writes a finished runs row
for every job's run id through the real ResultStore write path (one part per run, then compacted,
as the store does by default), then times the whole CLI rerun in a fresh process, imports included
(target <= 60 s at N = 10,000). `--partial` finishes every run but the last and times the CLI rerun,
which launches that one job only (the tiny job itself takes about 20 s; before the sweeper left
finished jobs out, each of the others cost about 0.5 s of Hydra composition). Data come from
HARNESS_DATA_DIR (default ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported

from omegaconf import OmegaConf  # noqa: E402

from harness.cli import preflight  # noqa: E402
from harness.run.prepare import prepare  # noqa: E402
from harness.run.tracking import check_config  # noqa: E402
from harness.store.result_store import ResultStore  # noqa: E402

METHODS = ("lora", "pissa", "dora", "ia3")


def sweep(jobs: int, results: Path) -> list[str]:
    seeds = max(1, jobs // len(METHODS))
    return ["+sweep=smoke", f"seed=range(0,{seeds})", f"method={','.join(METHODS)}", f"results_dir={results}"]


def before(overrides: list[str]) -> int:
    """The preflight as it was: every job composed by Hydra and prepared from scratch."""
    jobs = preflight.expand_jobs(overrides)
    for job in jobs:
        cfg = preflight._compose([o for o in job if not o.startswith("hydra.")])
        OmegaConf.resolve(cfg)
        prepare(cfg)  # checks the options first
        check_config(cfg.wandb)
    return len(jobs)


def timed(label: str, check, overrides: list[str]):
    start, cpu = time.perf_counter(), time.process_time()
    out = check(overrides)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = out if isinstance(out, int) else len(out)
    print(f"{label:>8} {n:>7} jobs {took:9.2f} s {took / n * 1000:8.2f} ms/job (CPU {cpu / n * 1000:5.2f} ms/job)  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return out


def finish_all(results: Path, run_ids: list[str]) -> float:
    """A finished runs row for every run id, written as runs write theirs; then one compaction."""
    start = time.perf_counter()
    store = ResultStore(results)
    for run_id in dict.fromkeys(run_ids):
        store.write({"run_id": run_id, "status": "finished", "method": "synthetic", "seed": 0})
    store.compact()
    return time.perf_counter() - start


def rerun(overrides: list[str], left: int = 0) -> None:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", *overrides], cwd=REPO, capture_output=True, text=True)
    took = time.perf_counter() - start
    expected = f"launching the other {left}" if left else "nothing to launch"
    line = next((ln for ln in proc.stdout.splitlines() if expected in ln), proc.stderr.strip()[-300:])
    ok = proc.returncode == 0 and expected in line
    what = f"all but {left} run(s) finished" if left else "every run finished"
    print(f"   rerun CLI, {what}: {took:.2f} s (exit {proc.returncode}{'' if ok else ', UNEXPECTED'}): "
          f"{line[:140]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[400, 2000, 10000])
    parser.add_argument("--before", action="store_true", help="also time the old per-job path")
    parser.add_argument("--rerun", action="store_true", help="also time the CLI rerun with every run finished")
    parser.add_argument("--partial", action="store_true", help="also time the CLI rerun with all runs but the last finished")
    parser.add_argument("--results", type=Path, default=Path("/tmp/preflight_scale_results"))
    args = parser.parse_args()
    for n in args.jobs:
        results = args.results / f"n{n}"
        shutil.rmtree(results, ignore_errors=True)
        overrides = sweep(n, results)
        if args.before:
            timed("before", before, overrides)
        planned = timed("after", preflight.plan, overrides)
        if args.partial:
            ids = [j.run_id for j in planned]
            print(f"   {len(ids) - 1} finished runs written in {finish_all(results, ids[:-1]):.1f} s", flush=True)
            rerun(overrides, left=1)
        if args.rerun:
            print(f"   {len(planned)} finished runs written in {finish_all(results, [j.run_id for j in planned]):.1f} s",
                  flush=True)
            rerun(overrides)


if __name__ == "__main__":
    main()
