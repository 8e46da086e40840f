"""How a sweep's fixed costs grow with the number of runs N: N synthetic finished runs written through
the real ResultStore write path, then the store read, skip-done lookups, a query, the report, a full
compaction and (with --preflight) the preflight of an N-job sweep, each timed. Prints seconds, the
cost per run and whether it stays flat as N grows (targets at 10,000: read <= 2 s, report <= 15 s).

    python benchmarks/sweep_scale.py                        # N = 1000, 10000
    python benchmarks/sweep_scale.py --n 1000,10000,100000 --report-timeout 900
    python benchmarks/sweep_scale.py --template results     # copy a real row from this folder

Rows are realistic: every column of a real finished run (by default a tiny-random-llama smoke run made
first, ~40 s), with run_id, method, seed, lr and the config varied, and 20 final metric rows each.
They are written by --workers processes at once, with the store's automatic compaction as a sweep
would trigger it (HARNESS_COMPACT_PARTS; `--compact-parts 0` keeps every part loose, the worst case).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
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
from harness.store import finished  # noqa: E402
from harness.store.parts import list_parts  # noqa: E402
from harness.store.result_store import COMPACT_PARTS_ENV, ResultStore  # noqa: E402

METHODS = ["lora", "pissa", "dora", "ia3", "vera", "adalora", "loha", "lokr", "boft", "prefix_tuning"]
METRICS_PER_RUN = 20
TEMPLATE_RUN = [*template_run.TINY, "sweep_name=sweep_scale_template"]


def template(results: Path | None, scratch: Path) -> tuple[dict, list[dict]]:
    """A real finished runs row and its final metric rows (from `results`, else from a tiny run made now)."""
    row, metrics = template_run.finished_run(results or template_run.make(scratch / "template", TEMPLATE_RUN))
    rows = [template_run.plain_row(m) for m in metrics[metrics["step"].isna()].to_dict("records")]
    extra = [{**rows[i % len(rows)], "metric": f"{rows[i % len(rows)]['metric']}_copy{i}"} for i in range(METRICS_PER_RUN)]
    return row, (rows + extra)[:METRICS_PER_RUN]  # copies only when the run had fewer metric rows


def synthetic(row: dict, metrics: list[dict], i: int) -> tuple[dict, list[dict]]:
    """Run i: its own run id, method, seed, lr and config text; metric values jittered."""
    rng = random.Random(i)
    method, seed = METHODS[i % len(METHODS)], i // len(METHODS)
    config = json.loads(row["config_json"]) if row.get("config_json") else {}
    config.update(seed=seed, method={**config.get("method", {}), "name": method})
    run = {**row, "run_id": hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()[:16], "method": method, "seed": seed,
           "data_seed": seed, "init_seed": seed, "lr": row["lr"] * rng.choice([0.5, 1.0, 2.0]),
           "config_json": json.dumps(config, sort_keys=True), "sweep": "sweep_scale"}
    return run, [{**m, "value": (m["value"] or 0.0) + rng.random() * 1e-3} for m in metrics]


def _writer(root: str, row: dict, metrics: list[dict], ids: range) -> None:
    store = ResultStore(root)
    for i in ids:
        store.write(*synthetic(row, metrics, i))


def build(root: Path, n: int, workers: int, row: dict, metrics: list[dict]) -> float:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(root), row, metrics, range(w, n, workers))) for w in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"a writer process failed (exit {p.exitcode})")
    return time.perf_counter() - start


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def lookups(root: Path, ids: list[str]) -> tuple[float, int]:
    """Skip-done for every id as a fresh process would do it (its index starts empty)."""
    finished._INDEXES.clear()
    store = ResultStore(root)
    return timed(lambda: sum(store.is_finished(i) for i in ids))


def command(args: list[str], timeout: float, env: dict | None = None) -> tuple[float, str]:
    """Wall seconds of a CLI run and its outcome ('ok' or its last error line)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    lines = [line for line in proc.stderr.strip().splitlines() if line and not line.startswith("warning")]
    return time.perf_counter() - start, "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {(lines or ['?'])[-1][:160]}"


PREFLIGHT = """
import sys, time
from harness.cli.preflight import check
start = time.perf_counter(); jobs = check(sys.argv[1:]); print(jobs, time.perf_counter() - start)
"""


def preflight(root: Path, n: int, timeout: float) -> tuple[float, str]:
    """The preflight of an N-job tiny sweep (2 methods x N/2 seeds), alone, in a fresh process."""
    overrides = ["+sweep=smoke", f"results_dir={root}", "method=lora,pissa", f"seed=range(0,{max(1, n // 2)})"]
    env = {"HARNESS_DATA_DIR": os.environ.get("HARNESS_DATA_DIR", str(REPO / "tests" / "data"))}
    try:
        proc = subprocess.run([sys.executable, "-c", PREFLIGHT, *overrides], cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    except subprocess.TimeoutExpired:
        return timeout, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return float("nan"), f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1][:160]}"
    return float(proc.stdout.split()[-1]), f"{proc.stdout.split()[0]} jobs"


def measure(n: int, scratch: Path, args, row: dict, metrics: list[dict]) -> list[tuple[str, float, str]]:
    root = scratch / f"n{n}"
    out: list[tuple[str, float, str]] = []
    print(f"\nN = {n}: writing {n} runs with {args.workers} writer processes ...", flush=True)
    out.append(("write (auto-compacting)", build(root, n, args.workers, row, metrics), ""))
    listing = list_parts(root / "runs")
    state = f"{len(listing.loose)} loose + {len(listing.compacted)} compacted"
    seconds, (runs, metric_rows, _) = timed(lambda: ResultStore(root).read())
    assert len(runs) == n and len(metric_rows) == n * METRICS_PER_RUN, (len(runs), len(metric_rows))
    out.append(("store read, as written", seconds, state))
    ids = runs["run_id"].tolist()
    random.Random(0).shuffle(ids)
    seconds, hits = lookups(root, ids)
    assert hits == n
    out.append(("skip-done, all finished", seconds, ""))
    seconds, hits = lookups(root, [f"new{i:013d}" for i in range(n)])
    assert hits == 0
    out.append(("skip-done, new ids", seconds, ""))
    out.append(("query CLI (filter, 3 columns, 1 metric)", *command(
        ["-m", "harness.results", "query", str(root), "--method", "lora", "--columns", "run_id,seed,lr",
         "--metric", f"{metrics[0]['task']}/{metrics[0]['metric']}", "--format", "csv"], args.report_timeout)))
    if args.report:
        out.append(("report CLI", *command(["-m", "harness.report", str(root), "--out", str(scratch / f"report{n}")],
                                           args.report_timeout)))
    seconds, merged = timed(lambda: ResultStore(root).compact())
    out.append(("full compaction", seconds, f"{merged['runs'][0]} runs files"))
    out.append(("store read, compacted", timed(lambda: ResultStore(root).read())[0], "1 file per table"))
    if args.preflight:
        out.append(("preflight of an N-job sweep", *preflight(root, n, args.report_timeout)))
    for name, seconds, note in out:
        print(f"  {name:40s} {seconds:8.2f} s  {note}", flush=True)
    return out


def table(results: dict[int, list[tuple[str, float, str]]]) -> str:
    sizes = sorted(results)
    lines = [f"{'measure':40s} {'N':>7s} {'seconds':>9s} {'ms/run':>8s}  per-run cost vs N={sizes[0]}  note",
             "-" * 110]
    for i, (name, *_rest) in enumerate(results[sizes[0]]):
        base = results[sizes[0]][i][1] / sizes[0]
        for n in sizes:
            _, seconds, note = results[n][i]
            per = seconds / n
            growth = "" if n == sizes[0] else ("flat" if per <= 1.5 * base else f"grows x{per / base:.1f}")
            lines.append(f"{name:40s} {n:7d} {seconds:9.2f} {per * 1e3:8.3f}  {growth:22s}  {note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="1000,10000", help="comma-separated numbers of runs (default: 1000,10000)")
    parser.add_argument("--workers", type=int, default=2, help="writer processes (a sweep's workers)")
    parser.add_argument("--template", type=Path, help="results folder holding a finished run to copy")
    parser.add_argument("--compact-parts", type=int, help=f"sets {COMPACT_PARTS_ENV} for the writers (0: never compact)")
    parser.add_argument("--no-report", dest="report", action="store_false", help="skip timing the report")
    parser.add_argument("--preflight", action="store_true", help="also time the preflight of an N-job sweep")
    parser.add_argument("--report-timeout", type=float, default=600.0, help="seconds before a CLI run counts as failed")
    parser.add_argument("--keep", type=Path, help="write the stores here and keep them (default: a temp folder)")
    args = parser.parse_args()
    if args.compact_parts is not None:
        os.environ[COMPACT_PARTS_ENV] = str(args.compact_parts)
    sizes = sorted(int(n) for n in args.n.split(","))
    print(f"sweep_scale: N = {sizes} on {len(os.sched_getaffinity(0))} CPUs, load avg {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sweep_scale_") as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        row, metrics = template(args.template, scratch)
        results = {n: measure(n, scratch, args, row, metrics) for n in sizes}
    print(f"\n{table(results)}\nload avg at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
