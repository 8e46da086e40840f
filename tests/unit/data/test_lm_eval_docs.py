"""lm-eval documents read back from LLM-Adapters' instructions (harness/data/lm_eval_docs.py), on the
vendored real items: every item converts, the question and options are the instruction's own text,
and the gold answer survives the round trip."""

from __future__ import annotations

import json

import pytest

from harness.core.errors import HarnessError
from harness.data import lm_eval_docs


def _items(test_data, folder: str) -> list[dict]:
    return json.loads((test_data / "llm_adapters" / "dataset" / folder / "test.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("task", sorted(lm_eval_docs.CONVERTERS))
def test_every_vendored_item_converts_and_keeps_its_text(test_data, task):
    folder, convert = lm_eval_docs.CONVERTERS[task]
    items = _items(test_data, folder)
    docs = convert(items, folder)
    assert len(docs) == len(items) >= 40
    for item, doc in zip(items, docs):
        texts = {"arc_easy": lambda d: [d["question"], *d["choices"]["text"]], "arc_challenge": lambda d: [d["question"], *d["choices"]["text"]],
                 "piqa": lambda d: [d["goal"], d["sol1"], d["sol2"]],
                 "winogrande": lambda d: [d["sentence"], d["option1"], d["option2"]]}[task](doc)
        assert all(t and t in item["instruction"] for t in texts)  # read back verbatim, none empty
        gold = {"arc_easy": lambda d: d["choices"]["label"].index(d["answerKey"]) + 1,
                "arc_challenge": lambda d: d["choices"]["label"].index(d["answerKey"]) + 1,
                "piqa": lambda d: d["label"] + 1, "winogrande": lambda d: int(d["answer"])}[task](doc)
        assert item["answer"].endswith(str(gold))


def test_the_first_items_read_as_their_sources_write_them(test_data):
    arc = lm_eval_docs.arc(_items(test_data, "ARC-Easy")[:1], "ARC-Easy")[0]
    assert arc["question"] == "Which statement best explains why photosynthesis is the foundation of most food webs?"
    assert arc["choices"]["text"][0] == "Sunlight is the source of energy for nearly all ecosystems."
    assert len(arc["choices"]["text"]) == 4 and arc["answerKey"] == "A"
    wino = lm_eval_docs.winogrande(_items(test_data, "winogrande")[:1], "winogrande")[0]
    assert wino == {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                    "option1": "Sarah", "option2": "Maria", "answer": "2"}


def test_an_item_that_is_not_the_format_is_one_line_naming_it():
    bad = [{"instruction": "Please answer: what?\n\nAnswer format: true/false", "answer": "true"}]
    for convert in (lm_eval_docs.arc, lm_eval_docs.piqa, lm_eval_docs.winogrande):
        with pytest.raises(HarnessError, match=r"^boolq item 0: ") as err:
            convert(bad, "boolq")
        assert "\n" not in str(err.value)
