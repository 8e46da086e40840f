"""What a person reads while runs go: one console line per job event, everything else in the job's log.

The console gets `[sweep 2/4 start] <run>`, `[sweep 2/4 done 3m12s] <run summary>` followed by the
sweep's progress (jobs done, time elapsed, time left), `[sweep 2/4 skip] <run>: <why>` and
`[sweep 2/4 failed 41s] <run>: <error>; full log: <job.log>`; a run outside a sweep says `[start]`,
`[done 3m12s]`.

Everything else a job prints goes to `job.log` in its folder: library logging through Hydra's
job_logging (conf/hydra/job_logging/harness.yaml), Python warnings through logging (each at most once
per job), and, during a sweep or whenever stdout is not a terminal, the job's whole stdout and stderr
(progress bars, output of compiled code) by pointing file descriptors 1 and 2 at the log. A lone run
on a terminal keeps its progress bars there.

Parallel launchers run jobs in processes of their own. Each job knows its number (hydra.job.num) and
the sweep's size (the preflight's HARNESS_SWEEP_JOBS); how many jobs are done comes from the
`run.json` markers in the sweep folder, when the sweep began from HARNESS_SWEEP_STARTED, which the
launching process sets before any job starts (harness/cli/callbacks.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hydra.types import RunMode

from harness.cli.preflight import SWEEP_JOBS_ENV
from harness.cli.summary import run_line

LOG_NAME = "job.log"  # the file conf/hydra/job_logging/harness.yaml writes in each job folder
SWEEP_STARTED_ENV = "HARNESS_SWEEP_STARTED"

log = logging.getLogger("harness")


def job_markers(sweep_dir: Path) -> list[dict]:
    """The `run.json` marker of every job of a sweep (harness.run.experiment.write_job_marker); a marker
    being written at this very moment by a parallel job is left out."""
    found = []
    for marker in sorted(sweep_dir.glob("*/run.json")):
        try:
            found.append(json.loads(marker.read_text()))
        except (OSError, ValueError):
            continue
    return found


def sweep_statuses(sweep_dir: Path) -> dict[str, str]:
    """run_id -> status of every job of a sweep."""
    return {info["run_id"]: info["status"] for info in job_markers(sweep_dir)}


def duration(seconds: float) -> str:
    """`45s`, `3m12s`, `2h05m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass(frozen=True)
class SweepPosition:
    """Where one job stands in its sweep."""

    number: int  # this job's, counted from 1
    total: int | None  # jobs in the sweep; None when the preflight did not count them
    sweep_dir: Path
    started: float  # time.time() when the sweep began

    @classmethod
    def of_job(cls, hydra_cfg: Any) -> SweepPosition | None:
        """This job's position, from Hydra's runtime config; None for a run outside a sweep."""
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return None
        total, started = os.environ.get(SWEEP_JOBS_ENV), os.environ.get(SWEEP_STARTED_ENV)
        return cls(int(hydra_cfg.job.num) + 1, int(total) if total else None, Path(hydra_cfg.sweep.dir),
                   float(started) if started else time.time())

    def progress(self, now: float) -> str:
        """`sweep: 3/4 done, 6m40s elapsed, about 2m13s left`: jobs ended so far (finished, failed or
        skipped), whichever process ran them. The time left assumes the jobs still to come run as
        fast as those that ran did; skipped jobs (finished before) took no time and do not count, so a
        resumed sweep's estimate is not cut short by them (it is long if more skips are to come)."""
        ended = [info for info in job_markers(self.sweep_dir) if info.get("status") != "running"]
        ran = sum(1 for info in ended if not info.get("skipped"))
        elapsed = now - self.started
        text = f"sweep: {len(ended)}/{self.total or '?'} done, {duration(elapsed)} elapsed"
        if self.total and ran and len(ended) < self.total:
            text += f", about {duration(elapsed / ran * (self.total - len(ended)))} left"
        return text


@dataclass
class JobConsole:
    """The console lines of one job; each also goes to the job's log."""

    position: SweepPosition | None
    log_file: Path
    write: Callable[[str], None]  # reaches the console even while the job's own output goes to its log
    began: float = field(default_factory=time.time)

    def tag(self, event: str) -> str:
        if self.position is None:
            return f"[{event}]"
        return f"[sweep {self.position.number}/{self.position.total or '?'} {event}]"

    def say(self, text: str) -> None:
        self.write(text)
        log.info(text)

    def start(self, label: str) -> None:
        self.say(f"{self.tag('start')} {label}")

    def skip(self, label: str, reason: str) -> None:
        self.say(f"{self.tag('skip')} {label}: {reason}")

    def end(self, row: dict, metrics: Iterable[dict]) -> None:
        """The run's summary line (harness/cli/summary.py); a failure names the log that holds the details."""
        took = duration(time.time() - self.began)
        if row["status"] == "finished":
            text = f"{self.tag(f'done {took}')} {run_line(row, metrics)}"
        else:
            status = row["status"]
            text = f"{self.tag(f'{status} {took}')} {run_line(row, metrics)}; full log: {self.log_file}"
        if self.position is not None:
            text += f"\n  {self.position.progress(time.time())}"
        self.say(text)


@contextmanager
def job_console(job_dir: Path, position: SweepPosition | None) -> Iterator[JobConsole]:
    """Route the job's output to `<job_dir>/job.log` while it runs and give it its console lines.

    Python warnings go to logging, hence to the log; `catch_warnings` starts each job with a fresh
    record of the warnings already shown, so a worker process running several jobs shows each
    warning once per job. The job's stdout and stderr go to the log too during a sweep, or when
    stdout is not a terminal; a lone run on a terminal keeps its progress bars on it."""
    log_file = job_dir / LOG_NAME
    capture = position is not None or not sys.stdout.isatty()
    with warnings.catch_warnings():
        logging.captureWarnings(True)
        try:
            if capture:
                with _output_to(log_file) as console_fd:
                    yield JobConsole(position, log_file, lambda text: _write_line(console_fd, text))
            else:
                yield JobConsole(position, log_file, lambda text: print(text, flush=True))
        finally:
            logging.captureWarnings(False)


@contextmanager
def _output_to(log_file: Path) -> Iterator[int]:
    """Point file descriptors 1 and 2 at `log_file`, so that everything the process prints lands
    there, compiled code's output included; yields a descriptor that still reaches the console."""
    sys.stdout.flush()
    sys.stderr.flush()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    console, console_err = os.dup(1), os.dup(2)
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(console, 1)
        os.dup2(console_err, 2)
        for fd in (target, console, console_err):
            os.close(fd)


def _write_line(fd: int, text: str) -> None:
    """One write per line: lines of jobs running side by side never interleave."""
    data = (text + "\n").encode()
    while data:
        data = data[os.write(fd, data):]
