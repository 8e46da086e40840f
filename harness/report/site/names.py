"""File names of the site's pages and tables, relative to its root folder; one place, so every link
points where the page was written."""

from __future__ import annotations

import hashlib

from harness.report.build import slug
from harness.report.load import CONFIG_KEYS

CONFIG_DIR = "configs"
INDEX = "index.html"
REFERENCES = "references.html"


def task_file(task: str, view: str, ext: str = "html") -> str:
    """`<task>_<view>.<ext>`: views leaderboard, comparisons, pareto, forgetting, curves."""
    return f"{slug(task)}_{view}.{ext}"


def config_file(row, ext: str = "html") -> str:
    """A configuration's page (or its CSV), from its CONFIG_KEYS: readable task and method, and a
    short hash of all the keys, so two variants of one method never share a file."""
    keys = "\x1f".join(str(getattr(row, key)) for key in CONFIG_KEYS)
    digest = hashlib.sha1(keys.encode("utf-8")).hexdigest()[:10]
    return f"{CONFIG_DIR}/{slug(row.task)}_{slug(row.method)}_{digest}.{ext}"
