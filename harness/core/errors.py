"""Errors that end a run with a one-line message instead of a traceback.

A `HarnessError` is a user-facing problem (bad config, missing data, infeasible budget): the CLI
prints `error: <message>` on one line and exits with status 2, before any result row is written.
A `RunFailed` happens inside a run that already started (NaN loss, out of memory): the run is
recorded with status "failed" and its message, and the sweep goes on.
"""


class HarnessError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class RunFailed(Exception):
    """A started run could not finish; recorded as a failed run, never as metrics."""
