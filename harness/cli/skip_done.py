"""A rerun of a sweep whose runs have all finished launches nothing.

To launch a job Hydra composes its config twice more (the sweeper validates every job, the launcher
composes each again), about 0.5 s a job: a 10,000-job sweep rerun after it finished would spend over
an hour only to skip every job. The preflight already knows each job's run id, so when every run has
finished (and `force` is off) it prints the skip line each job would have printed, and stops there.
A sweep with any run left to do launches as usual; its finished jobs skip themselves (harness/cli/app.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.store.result_store import ResultStore


@dataclass(frozen=True)
class PlannedJob:
    """One validated job of a sweep: what the console calls it and where its run would be stored."""

    label: str
    run_id: str
    results_dir: str
    force: bool
    sweep_name: str

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
    lines = [f"[sweep {n}/{total} skip] {job.label}: run {job.run_id} already finished (force=true reruns it)"
             for n, job in enumerate(jobs, 1)]
    folders = ", ".join(sorted({job.results_dir for job in jobs}))
    lines.append(f"[sweep {jobs[0].sweep_name}] all {total} runs already finished in {folders}: nothing to launch "
                 "(force=true reruns them; `python -m harness.report` compares them)")
    print("\n".join(lines), flush=True)
