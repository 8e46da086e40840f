"""lm-eval documents read back from LLM-Adapters' instructions and MosaicML's BoolQ queries
(harness/data/lm_eval_docs.py), on the vendored real items: every item converts, the question and
options are the item's own text, and the gold answer survives the round trip."""

from __future__ import annotations


import pytest

from harness.core.errors import HarnessError
from harness.data import lm_eval_docs
from harness.data.layout import read_json_rows

TEXTS = {"arc_easy": lambda d: [d["question"], *d["choices"]["text"]],
         "arc_challenge": lambda d: [d["question"], *d["choices"]["text"]],
         "piqa": lambda d: [d["goal"], d["sol1"], d["sol2"]],
         "winogrande": lambda d: [d["sentence"], d["option1"], d["option2"]],
         "boolq": lambda d: [d["passage"], d["question"]],
         "gsm8k": lambda d: [d["question"]]}
GOLD = {"arc_easy": lambda d: f"answer{d['choices']['label'].index(d['answerKey']) + 1}",
        "arc_challenge": lambda d: f"answer{d['choices']['label'].index(d['answerKey']) + 1}",
        "piqa": lambda d: f"solution{d['label'] + 1}", "winogrande": lambda d: f"option{d['answer']}",
        "boolq": lambda d: d["label"], "gsm8k": lambda d: d["answer"]}


def _items(test_data, task: str) -> list[dict]:
    return read_json_rows(test_data / lm_eval_docs.CONVERTERS[task].relative)


def test_every_converter_is_tested():
    assert set(lm_eval_docs.CONVERTERS) == set(TEXTS) == set(GOLD)


def check_every_item(data_dir, task: str, at_least: int) -> None:
    local = lm_eval_docs.CONVERTERS[task]
    items = read_json_rows(data_dir / local.relative)
    docs = local.convert(items, local.relative)
    assert len(docs) == len(items) >= at_least
    for item, doc in zip(items, docs):
        source = item.get("instruction") or item.get("query") or item["question"]
        assert all(t and t in source for t in TEXTS[task](doc))  # read back verbatim, none empty
        assert GOLD[task](doc) == item.get("answer", item.get("gold"))


@pytest.mark.parametrize("task", sorted(lm_eval_docs.CONVERTERS))
def test_every_vendored_item_converts_and_keeps_its_text(test_data, task):
    check_every_item(test_data, task, 40)


@pytest.mark.slow
@pytest.mark.parametrize("task,size", [("arc_easy", 2376), ("arc_challenge", 1172), ("piqa", 1838),
                                       ("winogrande", 1267), ("boolq", 3270), ("gsm8k", 1319)])
def test_every_item_of_the_full_sets_converts(full_data, task, size):
    check_every_item(full_data, task, size)


def test_the_first_items_read_as_their_sources_write_them(test_data):
    arc = lm_eval_docs.arc(_items(test_data, "arc_easy")[:1], "ARC-Easy")[0]
    assert arc["question"] == "Which statement best explains why photosynthesis is the foundation of most food webs?"
    assert arc["choices"]["text"][0] == "Sunlight is the source of energy for nearly all ecosystems."
    assert len(arc["choices"]["text"]) == 4 and arc["answerKey"] == "A"
    wino = lm_eval_docs.winogrande(_items(test_data, "winogrande")[:1], "winogrande")[0]
    assert wino == {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                    "option1": "Sarah", "option2": "Maria", "answer": "2"}
    first, *_, quoting = lm_eval_docs.boolq(_items(test_data, "boolq"), "boolq")
    assert first["question"] == "does ethanol take more energy make that produces" and first["label"] == 0
    assert first["passage"].startswith("All biomass goes through at least some of these steps")
    assert quoting["question"] == "is the sea snake the most venomous snake"  # its passage has a line "Question: ..."
    assert "``Snakes in\nQuestion: The Smithsonian Answer Book''" in quoting["passage"]


def test_an_item_that_is_not_the_format_is_one_line_naming_it():
    bad = [{"instruction": "Please answer: what?\n\nAnswer format: true/false", "answer": "true"}]
    for convert in (lm_eval_docs.arc, lm_eval_docs.piqa, lm_eval_docs.winogrande, lm_eval_docs.boolq,
                    lm_eval_docs.gsm8k):
        with pytest.raises(HarnessError, match=r"^boolq item 0: ") as err:
            convert(bad, "boolq")
        assert "\n" not in str(err.value)
