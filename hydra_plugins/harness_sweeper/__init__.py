"""Hydra's basic sweeper, minus the jobs whose runs already finished (Hydra loads sweepers from the
`hydra_plugins` namespace only, hence this package beside `harness`).

Hydra composes each launched job's config twice more (the sweeper's check, then the launcher), about
0.5 s a job, even when the job then only skips its finished run: a partial rerun of a 10,000-job
sweep would spend most of an hour skipping. The preflight (harness/cli/preflight.py) knows each
job's run id and which have finished; `skip_done.launch_only_unfinished` hands this process's
sweeper the finished jobs' overrides, and it leaves them out of every batch. The rest launch as
Hydra would launch them (numbered from 0 in the new sweep folder). Without a preflight (Hydra's own
flags) nothing is left out.
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from harness.cli import skip_done


class SkipFinishedSweeper(BasicSweeper):
    """`hydra.sweeper` (conf/config.yaml): the basic sweeper's axes and batches, finished jobs left out."""

    def get_job_batch(self) -> list[list[str]]:
        while True:
            batch = [job for job in super().get_job_batch() if not skip_done.is_left_out(job)]
            if batch or self.is_done():
                return batch
