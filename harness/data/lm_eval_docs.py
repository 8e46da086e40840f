"""lm-eval documents from the data dir's files, for lm-eval tasks run offline (issue 19 item 4).

lm-eval's tasks read their datasets from the hub, in each dataset's own schema. Offline, the data
dir holds the same evaluation sets in other formats: LLM-Adapters' instructions
(`llm_adapters/dataset/<set>/test.json`: `instruction` with the question and its options, and
`answer`) and MosaicML's in-context-learning files (`probes/icl/<set>.jsonl`: `query`, `choices`,
`gold`). These converters read the question and options back out and write them in the hub schema
that lm-eval's task yaml renders, so lm-eval builds its own prompts and requests from them:

* ARC-Easy / ARC-Challenge (`allenai/ai2_arc`): `question`, `choices.text`, `choices.label`,
  `answerKey`. The labels become A, B, C, ... (lm-eval's prompt reads the texts; the target is the
  index of `answerKey` among the labels, which is kept);
* PIQA (`baber/piqa`): `goal`, `sol1`, `sol2`, `label`;
* WinoGrande (`allenai/winogrande`): `sentence` (with its `_`), `option1`, `option2`, `answer` ("1"/"2");
* GSM8K (`openai/gsm8k` main, test): `question`, `answer`, the data dir's own file unchanged;
* BoolQ (`aps/super_glue` boolq, validation): `passage`, `question`, `idx`, `label` (0 no, 1 yes), from
  MosaicML's `Passage: <passage>\nQuestion: <question>?` (LLM-Adapters' BoolQ has no passage).

TruthfulQA's multiple-choice sets (`mc1_targets`, `mc2_targets`) cannot be rebuilt: the data dir's
TruthfulQA.csv is the generation set, whose answer lists are not the multiple-choice file's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from harness.core.errors import HarnessError

OPTIONS = re.compile(r"(?:Answer|Solution)(\d):\s*")
WINOGRANDE = re.compile(r"^(?P<sentence>.*?)\n\nOption1: (?P<option1>.*?) Option2: (?P<option2>.*?) Answer format: option1/option2$", re.S)
LETTERS = "ABCDEFGH"


def _body(instruction: str) -> str:
    """The instruction after its lead-in ("Please choose ...: ") and before "Answer format"."""
    return instruction.partition(": ")[2].rsplit("\n\nAnswer format:", 1)[0]


def _choice(answer: str, prefix: str, n: int, where: str) -> int:
    match = re.fullmatch(rf"{prefix}(\d)", answer.strip())
    if not match or not 1 <= int(match.group(1)) <= n:
        raise HarnessError(f"{where}: answer {answer!r} is not one of {prefix}1..{prefix}{n}")
    return int(match.group(1)) - 1


def arc(items: list[dict], where: str) -> list[dict]:
    """ARC items in `allenai/ai2_arc`'s schema."""
    docs = []
    for i, item in enumerate(items):
        parts = OPTIONS.split(_body(item["instruction"]))
        question, texts = parts[0].strip(), [t.strip() for t in parts[2::2]]
        if len(texts) < 2:
            raise HarnessError(f"{where} item {i}: no Answer1..AnswerN options in its instruction")
        labels = list(LETTERS[: len(texts)])
        docs.append({"id": f"{i}", "question": question, "choices": {"text": texts, "label": labels},
                     "answerKey": labels[_choice(item["answer"], "answer", len(texts), f"{where} item {i}")]})
    return docs


def piqa(items: list[dict], where: str) -> list[dict]:
    """PIQA items in `baber/piqa`'s schema."""
    docs = []
    for i, item in enumerate(items):
        parts = OPTIONS.split(_body(item["instruction"]))
        texts = [t.strip() for t in parts[2::2]]
        if len(texts) != 2:
            raise HarnessError(f"{where} item {i}: expected Solution1 and Solution2 in its instruction")
        docs.append({"goal": parts[0].strip(), "sol1": texts[0], "sol2": texts[1],
                     "label": _choice(item["answer"], "solution", 2, f"{where} item {i}")})
    return docs


def winogrande(items: list[dict], where: str) -> list[dict]:
    """WinoGrande items in `allenai/winogrande`'s schema."""
    docs = []
    for i, item in enumerate(items):
        match = WINOGRANDE.match(item["instruction"].partition(": ")[2])
        if not match or "_" not in match["sentence"]:
            raise HarnessError(f"{where} item {i}: not a WinoGrande instruction (a sentence with _, Option1, Option2)")
        docs.append({"sentence": match["sentence"].strip(), "option1": match["option1"].strip(),
                     "option2": match["option2"].strip(),
                     "answer": str(_choice(item["answer"], "option", 2, f"{where} item {i}") + 1)})
    return docs


def boolq(items: list[dict], where: str) -> list[dict]:
    """BoolQ items in `aps/super_glue` boolq's schema. The question is the text after the query's last
    "\nQuestion: " (one passage quotes a book titled "Question: ..."), without the "?" appended to it."""
    docs = []
    for i, item in enumerate(items):
        passage, found, question = str(item.get("query", "")).rpartition("\nQuestion: ")
        if not (found and passage.startswith("Passage: ") and question.endswith("?")
                and item.get("choices") == ["no", "yes"] and item.get("gold") in (0, 1)):
            raise HarnessError(f"{where} item {i}: not a BoolQ query (Passage: ...\\nQuestion: ...? with choices no/yes)")
        docs.append({"question": question[:-1], "passage": passage.removeprefix("Passage: "), "idx": i, "label": item["gold"]})
    return docs


def gsm8k(items: list[dict], where: str) -> list[dict]:
    """GSM8K items, already in `openai/gsm8k`'s schema: checked, and kept as they are."""
    for i, item in enumerate(items):
        if not (isinstance(item.get("question"), str) and "#### " in str(item.get("answer", ""))):
            raise HarnessError(f"{where} item {i}: not a GSM8K item (a question, and an answer ending in #### <number>)")
    return [{"question": item["question"], "answer": item["answer"]} for item in items]


@dataclass(frozen=True)
class LocalDocs:
    """Where a task's documents lie in the data dir, and the converter to the hub schema."""

    dataset: str
    """The folder `fetch` reports them under."""
    relative: str
    """The file, relative to the data dir."""
    convert: Callable[[list[dict], str], list[dict]]


def _llm_adapters(folder: str, convert: Callable[[list[dict], str], list[dict]]) -> LocalDocs:
    return LocalDocs(f"llm_adapters/{folder}", f"llm_adapters/dataset/{folder}/test.json", convert)


# lm-eval task -> its documents in the data dir
CONVERTERS = {
    "arc_easy": _llm_adapters("ARC-Easy", arc),
    "arc_challenge": _llm_adapters("ARC-Challenge", arc),
    "piqa": _llm_adapters("piqa", piqa),
    "winogrande": _llm_adapters("winogrande", winogrande),
    "boolq": LocalDocs("probes/icl", "probes/icl/boolq.jsonl", boolq),
    "gsm8k": LocalDocs("gsm8k", "gsm8k/test.jsonl", gsm8k),
}
