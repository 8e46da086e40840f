"""`python -m harness [overrides]`: validate every job, then hand over to Hydra.

Errors the user can fix print as one line (`error: ...`) with exit status 2 and write no rows.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    # We format errors ourselves: let exceptions leave Hydra instead of its multi-line report.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from harness.core.errors import HarnessError

    try:
        from harness.cli import app, preflight, skip_done

        overrides = [a for a in sys.argv[1:] if not a.startswith("-") or a in ("-m", "--multirun")]
        if overrides == sys.argv[1:]:  # Hydra flags (--help, --cfg, ...) skip the preflight
            jobs = preflight.plan(overrides)
            if skip_done.all_finished(jobs):  # a rerun of a finished sweep: nothing to launch
                skip_done.report_all_finished(jobs)
                return 0
            skip_done.launch_only_unfinished(jobs, preflight.SWEEP_JOBS_ENV)  # a partial rerun launches the rest
        app.run()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 1 if app.FAILED_RUNS else 0


if __name__ == "__main__":
    sys.exit(main())
