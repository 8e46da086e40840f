"""The sweep's progress line: the time left is extrapolated from the jobs that ran, not from those
skipped because their run had finished before (a resumed sweep)."""

from __future__ import annotations

from harness.cli.console import SweepPosition
from harness.run.experiment import write_job_marker


def test_time_left_counts_the_jobs_that_ran_not_the_skipped_ones(tmp_path):
    for job, (status, skipped) in enumerate([("finished", True), ("finished", True), ("finished", False),
                                             ("failed", False), ("running", False)]):
        write_job_marker(tmp_path / str(job), f"run{job}", status, skipped)
    position = SweepPosition(number=5, total=8, sweep_dir=tmp_path, started=1000.0)
    # 4 ended, 2 of them ran in 10 minutes: the 4 still to come (the running one included) take 20 more
    assert position.progress(now=1600.0) == "sweep: 4/8 done, 10m00s elapsed, about 20m00s left"


def test_no_estimate_before_a_job_ran_or_once_all_ended(tmp_path):
    write_job_marker(tmp_path / "0", "run0", "finished", skipped=True)
    assert SweepPosition(2, 3, tmp_path, 1000.0).progress(1010.0) == "sweep: 1/3 done, 10s elapsed"
    assert SweepPosition(1, 1, tmp_path, 1000.0).progress(1010.0) == "sweep: 1/1 done, 10s elapsed"
    assert SweepPosition(2, None, tmp_path, 1000.0).progress(1010.0) == "sweep: 1/? done, 10s elapsed"
