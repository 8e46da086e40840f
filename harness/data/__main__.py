"""`python -m harness.data fetch --to DIR [--tasks NAME ...] [--from DIR]` and
`python -m harness.data check DIR [--tasks NAME ...]`: prepare a data dir for machines without
network, and say whether each task and forgetting probe can run from one.

fetch writes every dataset the named tasks and probes read (all by default) into DIR in the local
layout (`data.dir`), from the first source that serves it: the Hugging Face hub, the HF cache, or
the data dir given with --from; it records each file in DIR/checksums.json and exits 1 when a
dataset could not be fetched. check prints one line per task and probe and exits 1 when one cannot
run. Bad input is one line `error: ...` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.core.errors import HarnessError


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise HarnessError(f"{what} {path} is not a folder; give a data dir in ../shared/data's layout "
                           f"(prepare one with: python -m harness.data fetch --to DIR)")
    return path.resolve()


def _writable(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise HarnessError(f"cannot write to --to {path} ({exc.strerror or exc}); choose a folder you can write to") from None
    return path.resolve()


def fetch(args: argparse.Namespace) -> int:
    from harness.data.fetch import copy_source, fetch_dataset, hub_source
    from harness.data.layout import merge
    from harness.data.manifest import MANIFEST
    from harness.data.needs import needs

    wanted = needs(args.tasks)
    sources = [hub_source(offline=False), hub_source(offline=True)]
    if args.source is not None:
        sources.append(copy_source(_folder(args.source, "--from")))
    to = _writable(args.to)
    outcomes = []
    for dataset in merge(d for need in wanted for d in need.datasets):
        outcomes.append(fetch_dataset(dataset, to, sources))
        print(outcomes[-1].line(), flush=True)
    failed = [o.dataset.name for o in outcomes if o.source is None]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} datasets fetched into {to} (checksums: {to / MANIFEST})"
          + (f"; not fetched: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def check(args: argparse.Namespace) -> int:
    from harness.data.check import check as check_need
    from harness.data.needs import needs

    wanted = needs(args.tasks)
    root = _folder(args.dir, "data dir")
    blocked = []
    for need in wanted:
        verdict = check_need(need, root)
        print(verdict.line(), flush=True)
        if not verdict.ok:
            blocked.append(need.name)
    print(f"{len(wanted) - len(blocked)} of {len(wanted)} can run from {root}"
          + (f"; to fetch what they lack: python -m harness.data fetch --to {root} --tasks {' '.join(blocked)}" if blocked else ""))
    return 1 if blocked else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.data", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    names = "task configs (conf/task) or forgetting probes (default: all)"
    fetch_cmd = commands.add_parser("fetch", help="write datasets into a data dir")
    fetch_cmd.add_argument("--to", type=Path, required=True, metavar="DIR", help="the data dir to write (created if needed)")
    fetch_cmd.add_argument("--tasks", nargs="+", metavar="NAME", help=names)
    fetch_cmd.add_argument("--from", dest="source", type=Path, metavar="DIR", help="another data dir to copy from, after the hub and the HF cache")
    check_cmd = commands.add_parser("check", help="say which tasks and probes can run from a data dir")
    check_cmd.add_argument("dir", type=Path, metavar="DIR")
    check_cmd.add_argument("--tasks", nargs="+", metavar="NAME", help=names)
    args = parser.parse_args(argv)
    try:
        return fetch(args) if args.command == "fetch" else check(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
