"""A rerun of a sweep launches only the jobs whose runs have not finished.

To launch a job Hydra composes its config twice more (the sweeper validates every job, the launcher
composes each again), about 0.5 s a job: a 10,000-job sweep rerun after it finished would spend over
an hour only to skip every job. The preflight already knows each job's run id, so it prints the skip
line of every finished job (`force` off) itself. When every run has finished it stops there; else
the sweeper (hydra_plugins/harness_sweeper) leaves the finished jobs out and the rest launch. A job whose run
finishes between the preflight and its launch still skips itself (harness/cli/app.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from harness.store.result_store import ResultStore

_left_out: set[frozenset[str]] = set()  # the finished jobs' overrides, for this process's sweeper


@dataclass(frozen=True)
class PlannedJob:
    """One validated job of a sweep: what the console calls it and where its run would be stored."""

    label: str
    run_id: str
    results_dir: str
    force: bool
    sweep_name: str
    overrides: tuple[str, ...] = ()
    """The job's overrides as Hydra's sweeper lists them."""

    def finished(self) -> bool:
        """Whether launching it would only skip it: its run finished and force is off."""
        return not self.force and ResultStore(self.results_dir).is_finished(self.run_id)


def all_finished(jobs: Sequence[PlannedJob]) -> bool:
    """True for a sweep (two jobs or more) whose every run has finished; it stops at the first job
    that has not, so a new sweep pays one lookup. A single run is launched as it always was."""
    return len(jobs) > 1 and all(job.finished() for job in jobs)


def report_all_finished(jobs: Sequence[PlannedJob]) -> None:
    """The skip line of every job (as each job prints it, harness/cli/console.py), then one line saying so."""
    total = len(jobs)
    lines = [_skip_line(n, total, job) for n, job in enumerate(jobs, 1)]
    folders = ", ".join(sorted({job.results_dir for job in jobs}))
    lines.append(f"[sweep {jobs[0].sweep_name}] all {total} runs already finished in {folders}: nothing to launch "
                 "(force=true reruns them; `python -m harness.report` compares them)")
    print("\n".join(lines), flush=True)


def _skip_line(n: int, total: int, job: PlannedJob) -> str:
    return f"[sweep {n}/{total} skip] {job.label}: run {job.run_id} already finished (force=true reruns it)"


def job_key(overrides: Sequence[str]) -> frozenset[str]:
    """A job's overrides, Hydra's own (`hydra.*`) left out and order ignored."""
    return frozenset(o for o in overrides if not o.startswith("hydra."))


def launch_only_unfinished(jobs: Sequence[PlannedJob], jobs_env: str) -> None:
    """Print the skip line of every finished job of a sweep and leave those jobs out of its launch
    (`jobs_env`, the launched job count the console and the thread split read, counts the rest)."""
    _left_out.clear()
    if len(jobs) < 2:
        return
    finished = [(n, job) for n, job in enumerate(jobs, 1) if job.finished()]
    if not finished:
        return
    total = len(jobs)
    lines = [_skip_line(n, total, job) for n, job in finished]
    lines.append(f"[sweep {jobs[0].sweep_name}] {len(finished)} of {total} runs already finished: "
                 f"launching the other {total - len(finished)}")
    print("\n".join(lines), flush=True)
    _left_out.update(job_key(job.overrides) for _, job in finished)
    os.environ[jobs_env] = str(total - len(finished))


def is_left_out(overrides: Sequence[str]) -> bool:
    """Whether the sweeper leaves this job out: its run finished before the sweep launched."""
    return job_key(overrides) in _left_out
