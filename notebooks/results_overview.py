"""A first look at a results folder: runs per status and the per-configuration comparison table.

    python notebooks/results_overview.py results
"""

import sys

from harness.store import ResultStore
from harness.summary import comparison_table, format_table

store = ResultStore(sys.argv[1] if len(sys.argv) > 1 else "results")
runs, metrics, bad = store.read(strict=False)
if bad:
    print("skipped unreadable parts:", *bad, sep="\n  ")
print(runs.groupby(["sweep", "status"]).size().rename("runs").to_string(), end="\n\n")
print(format_table(comparison_table(store, runs["run_id"])))
