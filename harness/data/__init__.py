"""Prepare a local data dir for machines without network (`python -m harness.data fetch|check`).

* `layout`: what a task reads from a data dir (files, their parsers, the hub rows that make them);
  tasks declare theirs in `Task.local_datasets`.
* `needs`: every task config and forgetting probe, with the datasets it reads and its own loader.
* `fetch`: write those datasets into a data dir from the hub, the HF cache or another data dir.
* `check`: say, per task and probe, whether it can run from a data dir, and what is missing.
* `manifest`: the data dir's checksum manifest; `files`: atomic writes.
"""
