"""Caches shared by a sweep's runs: computed once even with concurrent workers, never read half
written, keyed so that a different tokenizer, text or setting never hits another entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.core.cache import cached_json, compute_once, tokenized, tokenizer_fingerprint
from harness.train.encoding import encode_pair
from tests.conftest import REPO


@pytest.fixture(scope="module")
def tokenizer():
    """A fresh copy of the real SmolLM2 tokenizer per call (tiny-random-llama uses it too)."""
    from transformers import AutoTokenizer

    from harness.models.loading import converted_gguf_dir

    folder, _ = converted_gguf_dir(yaml.safe_load((REPO / "conf" / "model" / "smollm2-135m.yaml").read_text()))
    return lambda: AutoTokenizer.from_pretrained(folder)


PAIRS = [("Question: 2+2?\nAnswer:", " 4 #### 4"), ("Question: a long one " * 20, " it is 7 #### 7")]


# A worker: computes the entry slowly (long enough for every other worker to find it missing) and
# logs each computation.
WORKER = """
import sys, time
from pathlib import Path
from harness.core.cache import compute_once

def write(tmp):
    with open(sys.argv[2], "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)
    tmp.write_text("value")

assert compute_once(Path(sys.argv[1]), write).read_text() == "value"
"""


def test_concurrent_workers_compute_an_entry_once(tmp_path):
    target, log = tmp_path / "cache" / "entry.json", tmp_path / "log.txt"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(target), str(log)], cwd=REPO) for _ in range(4)]
    assert [w.wait(120) for w in workers] == [0, 0, 0, 0]
    assert log.read_text().count("computed") == 1
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == ["entry.json"]


def test_a_failed_computation_leaves_nothing_readable(tmp_path):
    target = tmp_path / "entry.json"

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        compute_once(target, broken)
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))
    assert compute_once(target, lambda tmp: tmp.write_text("whole")).read_text() == "whole"


def test_tokenized_cache_hits_and_matches_fresh_encoding(tmp_path, tokenizer):
    tok = tokenizer()
    calls = []

    def encode(pairs):
        calls.append(len(pairs))
        return [encode_pair(tok, p, t, 32) for p, t in pairs]

    first = tokenized(tmp_path, tok, PAIRS, {"max_len": 32}, encode)
    again = tokenized(tmp_path, tok, PAIRS, {"max_len": 32}, encode)
    assert first == again == [encode_pair(tok, p, t, 32) for p, t in PAIRS]
    assert calls == [2]  # the second call read the cache
    assert len(first[1][0]) == 32  # truncation survived the round trip
    tokenized(tmp_path, tok, PAIRS, {"max_len": 16}, encode)  # other settings: another entry
    tokenized(tmp_path, tok, PAIRS[:1], {"max_len": 32}, encode)  # other texts: another entry
    assert calls == [2, 2, 1]
    assert tokenized(tmp_path, tok, [], {"max_len": 32}, encode) == []


def test_tokenizer_fingerprint_follows_content_not_name(tokenizer):
    tok = tokenizer()
    same = tokenizer()
    assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(same)
    same.add_tokens(["<new-token>"])  # encodes differently now
    assert tokenizer_fingerprint(tok) != tokenizer_fingerprint(same)


def test_base_model_evaluations_are_computed_once(tmp_path):
    calls = []
    key = {"model": "m", "probe": {"n": 2}}
    value, was_cached = cached_json(tmp_path, key, lambda: calls.append(1) or {"ce": [1.5, 2.0]})
    again, again_cached = cached_json(tmp_path, key, lambda: calls.append(1) or {"ce": [0.0]})
    assert (value, was_cached) == ({"ce": [1.5, 2.0]}, False)
    assert (again, again_cached) == ({"ce": [1.5, 2.0]}, True) and calls == [1]
