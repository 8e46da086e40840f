"""The result store: tidy parquet tables of runs, metrics and samples."""

from harness.store.result_store import ResultStore

__all__ = ["ResultStore"]
