"""Protocol fidelity checklists: for each reproduction protocol (conf/leaderboard/<name>.yaml), every
knob of the source's training and evaluation scripts, where it is set, its value there, ours, and
the verdict ("matches" or "differs: why").

The checklists are machine-readable tables, docs/protocols/<name>.yaml, so that the docs page
(docs/protocols.md, filled by docs/hooks/protocol_checklists.py) and the config cannot drift apart:
a row that names an `option` states the value that option composes to in the protocol (in every
arm, or in the `arms` it names), and tests/unit/config/test_protocol_checklists.py checks each one.

A file holds `protocol`, `sources` (an id per repository and commit), `rows` and optionally
`extends` (another checklist whose rows it starts from; a row of the same `knob` replaces one,
`drop: true` removes it). A row's `at` is "<source id> <file>:<line>[-<line>]".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from harness.config.checks import _ABSENT, lookup
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR

CHECKLIST_DIR = CONF_DIR.parent / "docs" / "protocols"
MATCHES, DIFFERS = "matches", "differs: "
AT = re.compile(r"(?P<source>\S+) (?P<file>[^:]+):(?P<first>\d+)(?:-(?P<last>\d+))?")


@dataclass(frozen=True)
class Row:
    """One knob of a source's scripts, its value there and ours."""

    knob: str
    at: str
    theirs: str
    ours: Any
    verdict: str
    option: str | None = None  # the dotted config option `ours` is the composed value of
    arms: tuple[str, ...] = ()  # the arms (method names) the row is about; empty: every arm

    def applies_to(self, method: str) -> bool:
        return not self.arms or method in self.arms


@dataclass(frozen=True)
class Checklist:
    protocol: str
    sources: dict[str, dict[str, str]]
    rows: tuple[Row, ...]

    def link(self, row: Row) -> tuple[str, str]:
        """(the row's place as text, its URL at the source's commit)."""
        found = AT.fullmatch(row.at)
        if found is None or found["source"] not in self.sources:
            raise HarnessError(f"checklist {self.protocol}: row {row.knob!r} has at={row.at!r}; write "
                               f"'<source id> <file>:<line>[-<line>]' with a source id of {sorted(self.sources)}")
        source = self.sources[found["source"]]
        lines = f"L{found['first']}" + (f"-L{found['last']}" if found["last"] else "")
        url = f"https://github.com/{source['repo']}/blob/{source['commit']}/{found['file']}#{lines}"
        text = f"{found['file']}:{found['first']}{'-' + found['last'] if found['last'] else ''} @{source['commit'][:7]}"
        return text, url


def names() -> list[str]:
    return sorted(p.stem for p in CHECKLIST_DIR.glob("*.yaml"))


def load(name: str) -> Checklist:
    """The checklist of protocol `name`, its `extends` applied."""
    raw = _raw(name)
    rows: dict[str, dict] = {}
    sources: dict[str, dict[str, str]] = {}
    if raw.get("extends"):
        base = load(raw["extends"])
        sources.update(base.sources)
        rows = {r.knob: _as_dict(r) for r in base.rows}
    sources.update(raw.get("sources") or {})
    for row in raw["rows"]:
        if row.get("drop"):
            rows.pop(row["knob"], None)
        else:
            rows[row["knob"]] = row
    return Checklist(raw["protocol"], sources, tuple(_row(name, r) for r in rows.values()))


def _raw(name: str) -> dict:
    path = CHECKLIST_DIR / f"{name}.yaml"
    if not path.is_file():
        raise HarnessError(f"protocol {name} has no checklist: write {path} (docs/protocols.md says how)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _row(name: str, raw: dict) -> Row:
    verdict = str(raw["verdict"])
    if verdict != MATCHES and not (verdict.startswith(MATCHES + " (") or verdict.startswith(DIFFERS)):
        raise HarnessError(f"checklist {name}: row {raw['knob']!r} has verdict {verdict!r}; write "
                           f"'matches', 'matches (note)' or 'differs: why'")
    return Row(raw["knob"], raw["at"], str(raw["theirs"]), raw["ours"], verdict, raw.get("option"),
               tuple(raw.get("arms") or ()))


def _as_dict(row: Row) -> dict:
    return {"knob": row.knob, "at": row.at, "theirs": row.theirs, "ours": row.ours, "verdict": row.verdict,
            "option": row.option, "arms": list(row.arms)}


def mismatches(checklist: Checklist, configs: list[Mapping[str, Any]]) -> list[str]:
    """Where the checklist's `ours` is not what an arm's composed config holds: one line each.
    `configs`: the protocol's jobs, each a plain resolved config (its arm: `method.name`)."""
    found = []
    arms = {c["method"]["name"] for c in configs}
    for row in checklist.rows:
        if unknown := sorted(set(row.arms) - arms):
            found.append(f"{checklist.protocol}: row {row.knob!r} names arms {unknown} the protocol does not run")
        for config in configs if row.option else []:
            value = composed_value(config, row.option)
            if row.applies_to(config["method"]["name"]) and value != row.ours:
                shown = "nothing (the option is absent)" if value is _ABSENT else repr(value)
                found.append(f"{checklist.protocol}: row {row.knob!r}, arm {config['method']['name']}: "
                             f"{row.option} composes to {shown}, the checklist says {row.ours!r}")
    return found


def composed_value(config: Mapping[str, Any], option: str) -> Any:
    """The value a run reads for `option`: the composed config's, or for a method option the config
    leaves out, its `MethodConfig` default (methods/). Tuples read as lists, as in yaml."""
    value = lookup(config, option)
    group, _, name = option.partition(".")
    if value is _ABSENT and group == "method":
        import methods

        value = getattr(methods.build(dict(config["method"])).config, name, _ABSENT)
    return list(value) if isinstance(value, tuple) else value


def markdown(name: str) -> str:
    """The checklist as a Markdown table, for the docs page."""
    checklist = load(name)
    lines = ["| knob | where (source) | theirs | ours | verdict |", "|:--|:--|:--|:--|:--|"]
    for row in checklist.rows:
        place, url = checklist.link(row)
        ours = f"`{row.option}` = `{_text(row.ours)}`" if row.option else _escape(str(row.ours))
        if row.arms:
            ours += f" ({', '.join(row.arms)})"
        cells = [_escape(row.knob), f"[{place}]({url})", _escape(row.theirs), ours, _escape(row.verdict)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _text(value: Any) -> str:
    """A value as compact text for a table cell (long texts shortened; the yaml holds them whole)."""
    text = json.dumps(value) if isinstance(value, (str, list, dict)) or value is None or isinstance(value, bool) else str(value)
    text = text.replace("`", "'")
    return text if len(text) <= 90 else text[:80] + "…" + text[-8:]


def _escape(text: str) -> str:
    return text.replace("\n", " ").replace("<", "&lt;")
