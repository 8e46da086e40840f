"""`python -m harness.results COMMAND [RESULTS_DIR]`: maintenance of a results folder.

* `compact`: merge each table's part files into one file (safe while sweeps write and others read;
  see harness/store/result_store.py), and delete temp files that killed writers left behind.
* `failures`: the failed runs, their errors, and the command that reruns each one alone.
* `rerun-failed`: run those commands, one after another (finished runs are never touched).
* `query`: runs rows filtered by method/model/task/budget/status/sweep, chosen columns and final
  metric values, as CSV or markdown (harness/store/query.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from harness.core.errors import HarnessError
from harness.store import query
from harness.store.result_store import ResultStore


def rerun_command(job_dir: Path, results_dir: Path) -> list[str] | None:
    """The command that reruns one job of a sweep alone: its own overrides (the sweep's values for
    that job plus the command line), from the `.hydra/overrides.yaml` Hydra wrote for it."""
    saved = job_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        return None
    overrides = yaml.safe_load(saved.read_text()) or []
    if not any(o.startswith("results_dir=") for o in overrides):
        overrides.append(f"results_dir={results_dir}")
    return [sys.executable, "-m", "harness", *overrides]


def failed_runs(results_dir: Path) -> pd.DataFrame:
    runs, _ = ResultStore(results_dir).read_runs(["run_id", "status", "error", "method", "model", "task", "budget",
                                                  "seed", "job_dir", "started_at"], strict=False)
    return runs[runs["status"] == "failed"].sort_values("started_at").reset_index(drop=True)


def _format_command(cmd: list[str] | None) -> str:
    if cmd is None:
        return "(its job folder is gone: rerun the sweep's command; finished runs are skipped)"
    return shlex.join(["python", *cmd[1:]])


def failures(results_dir: Path) -> int:
    failed = failed_runs(results_dir)
    if failed.empty:
        print(f"no failed runs in {results_dir}")
        return 0
    print(f"{len(failed)} failed run(s) in {results_dir}:")
    for row in failed.itertuples():
        print(f"- {row.run_id} {row.method} {row.model} {row.task} {row.budget} seed={row.seed}: {row.error}")
        print(f"  rerun: {_format_command(rerun_command(Path(row.job_dir), results_dir))}")
    return 0


def rerun_failed(results_dir: Path) -> int:
    failed = failed_runs(results_dir)
    commands = [rerun_command(Path(j), results_dir) for j in failed["job_dir"]]
    if any(c is None for c in commands):
        missing = ", ".join(failed.loc[[c is None for c in commands], "run_id"])
        raise HarnessError(f"no saved overrides for failed run(s) {missing} (job folders gone); rerun their sweep command instead")
    status = 0
    for cmd in commands:
        print(f"$ {_format_command(cmd)}", flush=True)
        status = max(status, subprocess.run(cmd).returncode)
    return status


def run_query(results_dir: Path, args: argparse.Namespace) -> int:
    filters = {name: query.names(getattr(args, name)) for name in query.FILTERS if getattr(args, name) is not None}
    columns = query.names(args.columns) if args.columns is not None else list(query.DEFAULT_COLUMNS)
    metrics = [spec for text in args.metric for spec in query.names(text)]
    table, bad = query.run_query(ResultStore(results_dir), query.Query(filters, columns, metrics))
    for unreadable in bad:
        print(f"warning: unreadable result file left out: {unreadable}", file=sys.stderr)
    fmt = args.format or ("markdown" if sys.stdout.isatty() else "csv")
    try:
        sys.stdout.write(query.render(table, fmt))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness.results", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{compact,failures,rerun-failed,query}")
    for name, text in [("compact", "merge each table's files into one"), ("failures", "list failed runs and their commands"),
                       ("rerun-failed", "rerun the failed runs one after another"), ("query", "print runs rows as CSV or markdown")]:
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("results_dir", nargs="?", default="results", type=Path)
    ask = commands.choices["query"]
    for name in query.FILTERS:
        ask.add_argument(f"--{name}", metavar="A,B", help=f"only runs whose {name} is one of these")
    ask.add_argument("--columns", metavar="A,B", help=f"runs columns to show (default: {','.join(query.DEFAULT_COLUMNS)})")
    ask.add_argument("--metric", action="append", default=[], metavar="TASK/METRIC",
                     help="add a column of final values (repeatable): TASK/METRIC, or METRIC on each run's own task")
    ask.add_argument("--format", choices=query.FORMATS, help="default: markdown to a terminal, csv otherwise")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not (args.results_dir / "runs").is_dir():
            raise HarnessError(f"{args.results_dir} holds no runs/ folder; pass the results_dir a sweep wrote to")
        if args.command == "compact":
            for table, (files, rows) in ResultStore(args.results_dir).compact().items():
                print(f"{table}: {files} file(s) -> 1 ({rows} rows)" if files else f"{table}: nothing to compact")
            return 0
        if args.command == "query":
            return run_query(args.results_dir, args)
        return failures(args.results_dir) if args.command == "failures" else rerun_failed(args.results_dir)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
