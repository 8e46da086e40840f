"""Protocol fidelity checklists (docs/protocols/<name>.yaml, rendered in docs/protocols.md): every
protocol has one, each row's `ours` is what its option composes to in every arm it is about (through
the preflight, as a sweep composes it), each row points at a line of a pinned commit, and the docs
page renders every table."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util

import pytest
from omegaconf import OmegaConf

from harness.cli import preflight
from harness.config import checklists
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR

PROTOCOLS = sorted(p.stem for p in (CONF_DIR / "leaderboard").glob("*.yaml"))
DOCS = CONF_DIR.parent / "docs"


@functools.lru_cache(maxsize=None)  # composing is the slow part; the tests only read the configs
def _arms(name: str) -> list[dict]:
    configs = []
    for job in preflight.expand_jobs([f"+leaderboard={name}"]):
        configs.append(OmegaConf.to_container(preflight._compose(job), resolve=True))
    return configs


def test_every_protocol_has_a_checklist_and_every_checklist_a_protocol():
    assert checklists.names() == PROTOCOLS


@pytest.mark.parametrize("name", PROTOCOLS)
def test_the_ours_column_is_what_the_protocol_composes_to(name):
    checklist = checklists.load(name)
    assert checklist.protocol == name
    assert checklists.mismatches(checklist, _arms(name)) == []
    checked = [row for row in checklist.rows if row.option]
    assert len(checked) >= 10 and len(checklist.rows) > len(checked)  # options checked, and what no option sets stated


def test_a_checklist_that_drifted_from_its_protocol_is_caught():
    checklist = checklists.load("llm_adapters_math")
    rows = list(checklist.rows)
    warmup = next(i for i, r in enumerate(rows) if r.option == "train.warmup_steps")
    rows[warmup] = dataclasses.replace(rows[warmup], ours=0)
    series = next(i for i, r in enumerate(rows) if r.option == "model.load_in_8bit" and r.arms == ("series_adapter",))
    rows[series] = dataclasses.replace(rows[series], arms=("series_adapter", "lora"))
    rows.append(checklists.Row("gone", rows[0].at, "x", 1, "matches", "train.no_such_option"))
    rows.append(checklists.Row("other arm", rows[0].at, "x", 1, "matches", None, ("dora",)))
    found = checklists.mismatches(dataclasses.replace(checklist, rows=tuple(rows)), _arms("llm_adapters_math"))
    assert any("train.warmup_steps composes to 100, the checklist says 0" in line for line in found)
    assert any("arm lora: model.load_in_8bit composes to False" in line for line in found)
    assert any("names arms ['dora']" in line for line in found)
    assert any("train.no_such_option composes to nothing" in line for line in found)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_row_links_a_line_of_a_pinned_commit(name):
    checklist = checklists.load(name)
    for row in checklist.rows:
        place, url = checklist.link(row)
        repo_commit = url.split("/blob/")[1].split("/")[0]
        assert len(repo_commit) == 40 and "#L" in url and place.split(":")[0] in url
        assert row.verdict == "matches" or row.verdict.startswith(("matches (", "differs: "))


def test_a_bad_verdict_or_place_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(checklists, "CHECKLIST_DIR", tmp_path)
    (tmp_path / "p.yaml").write_text("protocol: p\nsources: {S: {repo: o/r, commit: abc}}\nrows:\n"
                                     "  - {knob: k, at: 'S f.py:3', theirs: a, ours: b, verdict: close enough}\n")
    with pytest.raises(HarnessError, match="verdict 'close enough'"):
        checklists.load("p")
    (tmp_path / "p.yaml").write_text("protocol: p\nsources: {S: {repo: o/r, commit: abc}}\nrows:\n"
                                     "  - {knob: k, at: 'T f.py', theirs: a, ours: b, verdict: matches}\n")
    with pytest.raises(HarnessError, match="at='T f.py'"):
        checklists.load("p").link(checklists.load("p").rows[0])


def test_an_extending_checklist_replaces_and_drops_rows_by_knob():
    base, child = checklists.load("llm_adapters_math"), checklists.load("llm_adapters_commonsense")
    knobs = {r.knob: r for r in child.rows}
    assert "AQuA answers" not in knobs and "answer words" in knobs  # dropped, added
    assert knobs["max_new_tokens"].ours == 32 and {r.knob: r for r in base.rows}["max_new_tokens"].ours == 256
    assert knobs["warmup_steps"] == {r.knob: r for r in base.rows}["warmup_steps"]  # inherited


def test_the_docs_page_renders_every_checklist():
    spec = importlib.util.spec_from_file_location("protocol_checklists", DOCS / "hooks" / "protocol_checklists.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = (DOCS / "protocols.md").read_text(encoding="utf-8")
    assert sorted(hook.MARKER.findall(page)) == PROTOCOLS
    rendered = hook.on_page_markdown(page)
    assert "<!-- checklist:" not in rendered
    assert "| warmup_steps | [finetune.py:280 @8166572](https://github.com/AGI-Edgerunners/LLM-Adapters/blob/" in rendered
