"""What the site says about a method besides its numbers: its family (for the leaderboard filter)
and its paper, as each method class records them (`family`, `paper` in methods/<name>.py; the
paper text ends in `arXiv:<id>` where there is one, which becomes the link)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ARXIV = re.compile(r"arXiv:(\d{4}\.\d{4,5})")
UNKNOWN_FAMILY = "unknown"


@dataclass(frozen=True)
class MethodInfo:
    family: str
    paper: str  # the citation as text ("" when the method is not registered any more)
    paper_url: str | None  # https://arxiv.org/abs/<id>, where the citation names one


def method_info(names: list[str]) -> dict[str, MethodInfo]:
    """The registry's family and paper of each method name; a name the registry no longer has (results
    of a removed method) gets family `unknown` and no paper."""
    import methods  # here, not at the top: it imports torch and peft, which the rest of the report never needs

    known = set(methods.names())
    info = {}
    for name in names:
        if name not in known:
            info[name] = MethodInfo(UNKNOWN_FAMILY, "", None)
            continue
        cls = methods.get(name)
        match = ARXIV.search(cls.paper)
        info[name] = MethodInfo(cls.family, cls.paper, f"https://arxiv.org/abs/{match.group(1)}" if match else None)
    return info
