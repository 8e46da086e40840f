"""Caches shared by the runs of a sweep, safe under concurrent workers (processes or machines on
one file system): each entry is computed at most once (an flock on `<entry>.lock` makes the others
wait, then read it), written to a temp file and renamed into place, so nobody reads half an entry
and a writer killed half-way leaves only a temp file that is never read.

`tokenized`: training sequences, keyed by the tokenizer's identity (a hash of its full
serialisation and special tokens, not its name), a hash of the texts (a causal LM's (prompt,
target) pairs, a classifier's one or two segments) and the encoding settings; GSM8K's 7.5k
training items take seconds to tokenize in every run otherwise (SST-2's 67k sentences, seven).
`cached_json`: small JSON values keyed by a mapping (the probes' base-model evaluations).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from harness.core.hashing import hash_object

if TYPE_CHECKING:  # light to import: worker processes that only need compute_once skip transformers
    from transformers import PreTrainedTokenizerBase

Encoded = list[tuple[list[int], list[int]]]
TOKENIZED_FORMAT = "v1"  # bump when the stored layout changes


def compute_once(path: Path, write: Callable[[Path], None]) -> Path:
    """`path`, created by `write(temp_path)` if it does not exist yet: once across processes."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by close, or by the kernel if we are killed
        if path.is_file():  # another worker computed it while we waited
            return path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path


def cached_json(cache_root: Path, key: Mapping[str, Any], compute: Callable[[], dict]) -> tuple[dict, bool]:
    """(value, was_cached): the JSON value stored under the hash of `key`, computed on first use
    and written atomically; parallel sweep jobs compute it once, the others wait (`compute_once`)."""
    path = cache_root / f"{hash_object(dict(key))}.json"
    computed = []

    def write(tmp: Path) -> None:
        computed.append(compute())
        tmp.write_text(json.dumps(computed[0]))

    compute_once(path, write)
    return (computed[0], False) if computed else (json.loads(path.read_text()), True)


def tokenizer_fingerprint(tok: PreTrainedTokenizerBase) -> str:
    """Identity of what a tokenizer does: two tokenizers with the same fingerprint encode alike."""
    backend = getattr(tok, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else sorted(tok.get_vocab().items())
    return hash_object({"class": type(tok).__name__, "body": body, "special": tok.special_tokens_map,
                        "ids": [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id]}, 32)


def tokenized(cache_root: Path, tok: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
              settings: dict[str, Any], encode: Callable[[Sequence[tuple[str, str]]], Encoded]) -> Encoded:
    """`encode(pairs)`, cached under `cache_root`: per item, token ids and one int per token (labels
    of a causal LM's target, a classifier's segment ids). `settings` must name everything else
    `encode` depends on (max length, appended tokens, ...): it is part of the key."""
    key = hash_object({"tokenizer": tokenizer_fingerprint(tok), "pairs": hash_object(list(pairs), 64),
                       "settings": settings, "format": TOKENIZED_FORMAT}, 32)

    def write(tmp: Path) -> None:
        encoded = encode(pairs)
        empty = [np.zeros(0, dtype=np.int64)]  # concatenate needs one array even with no items
        lengths = np.array([len(ids) for ids, _ in encoded], dtype=np.int64)
        with open(tmp, "wb") as f:
            np.savez(f, lengths=lengths, ids=np.concatenate([np.asarray(i, dtype=np.int64) for i, _ in encoded] + empty),
                     labels=np.concatenate([np.asarray(l, dtype=np.int64) for _, l in encoded] + empty))
            f.flush()
            os.fsync(f.fileno())

    with np.load(compute_once(cache_root / f"{key}.npz", write)) as stored:
        if not len(stored["lengths"]):
            return []
        bounds = np.cumsum(stored["lengths"])[:-1]
        ids, labels = np.split(stored["ids"], bounds), np.split(stored["labels"], bounds)
    return [(i.tolist(), l.tolist()) for i, l in zip(ids, labels)]
