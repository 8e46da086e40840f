"""From parquet to paper: leaderboards, paired comparisons, Pareto frontiers and figures of a
results folder. `python -m harness.report RESULTS_DIR` writes them all; notebooks/ call the same
functions (`build.task_report`, `build.task_figures`)."""
