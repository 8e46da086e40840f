"""MkDocs hook: fills each `<!-- checklist: NAME -->` with the fidelity checklist of protocol NAME
(docs/protocols/NAME.yaml, harness/config/checklists.py), the same table a test compares with the
protocol's composed config."""

from __future__ import annotations

import re

MARKER = re.compile(r"<!-- checklist: (\w+) -->")


def on_page_markdown(markdown: str, **kwargs) -> str:
    from harness.config.checklists import markdown as checklist_table

    return MARKER.sub(lambda found: checklist_table(found[1]), markdown)
