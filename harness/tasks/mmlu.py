"""MMLU (Hendrycks et al., 2021, arXiv:2009.03300): 57 subjects of four-way multiple choice.

Scored by log-likelihood of the answer letter, in lm-eval's default `mmlu` format (its
`mmlu/default` yamls), so the native evaluator and `evaluator=lm_eval` see the same text:

    The following are multiple choice questions (with answers) about {subject}.\n\n
    [k shots, each "{question}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer: {letter}" + "\n\n"]
    {question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:          choices " A", " B", " C", " D"

Shots (`num_fewshot`, 0-5) are the first k dev items of the item's subject (lm-eval's first_n
sampler: deterministic, no seed). Evaluation uses the first `n_eval` test items of each subject
(null: all 14,042). Runs with shots are filed as `mmlu_<k>shot`, so 0- and k-shot numbers never mix.

Training pool: the hub's `auxiliary_train` (99,842 items from other MC datasets). The local data
dir has no auxiliary_train, so the local source trains on the `val` split of the chosen subjects
(never on test items: val items that repeat a test item verbatim, 27 in the release, are dropped
from the pool) and says so in the data identity (`train_split`, `train_dropped_test_duplicates`).

Metric rows (task `mmlu` or `mmlu_<k>shot`): `acc` (size-weighted over all items, lm-eval's group
aggregate), `acc_macro` (mean of subject accuracies), `acc_<category>` for lm-eval's four
categories (size-weighted), and `acc/<subject>` for each subject; per-item rows in `samples`
under `acc`.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import dataclass
from typing import Any, Mapping

from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.data.layout import HubRequest, LocalDataset, LocalFile
from harness.data.sources import first_available, hub_loader, read_local
from harness.scoring.lm_eval_backend import LmEvalTask
from harness.scoring.loglik import ChoiceScore, best_choice
from harness.tasks import register
from harness.tasks.base import EvalContext, TaskData
from harness.tasks.choice import ChoiceTask, ChoiceTaskConfig, accuracy_metric

LETTERS = "ABCD"
# Subject -> category, as lm-eval's mmlu/_generate_configs.py groups them.
SUBJECTS = {
    "abstract_algebra": "stem", "anatomy": "stem", "astronomy": "stem", "business_ethics": "other",
    "clinical_knowledge": "other", "college_biology": "stem", "college_chemistry": "stem",
    "college_computer_science": "stem", "college_mathematics": "stem", "college_medicine": "other",
    "college_physics": "stem", "computer_security": "stem", "conceptual_physics": "stem",
    "econometrics": "social_sciences", "electrical_engineering": "stem", "elementary_mathematics": "stem",
    "formal_logic": "humanities", "global_facts": "other", "high_school_biology": "stem",
    "high_school_chemistry": "stem", "high_school_computer_science": "stem",
    "high_school_european_history": "humanities", "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences", "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem", "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem", "high_school_psychology": "social_sciences", "high_school_statistics": "stem",
    "high_school_us_history": "humanities", "high_school_world_history": "humanities", "human_aging": "other",
    "human_sexuality": "social_sciences", "international_law": "humanities", "jurisprudence": "humanities",
    "logical_fallacies": "humanities", "machine_learning": "stem", "management": "other", "marketing": "other",
    "medical_genetics": "other", "miscellaneous": "other", "moral_disputes": "humanities",
    "moral_scenarios": "humanities", "nutrition": "other", "philosophy": "humanities", "prehistory": "humanities",
    "professional_accounting": "other", "professional_law": "humanities", "professional_medicine": "other",
    "professional_psychology": "social_sciences", "public_relations": "social_sciences",
    "security_studies": "social_sciences", "sociology": "social_sciences", "us_foreign_policy": "social_sciences",
    "virology": "other", "world_religions": "humanities",
}
LOCAL_SPLITS = {"dev": "dev", "val": "validation", "test": "test"}  # local folder -> hub split
MAX_SHOTS = 5  # dev items per subject
VERSION = "v1"


def _read_csv(path, subject: str) -> list[dict]:
    """The original release's headerless `question,A,B,C,D,answer-letter` rows, in the hub's schema."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{"question": q, "subject": subject, "choices": [a, b, c, d], "answer": LETTERS.index(ans.strip())}
                for q, a, b, c, d, ans in csv.reader(f)]


def _csv_bytes(rows: list[dict]) -> bytes:
    """Hub rows as the release's `question,A,B,C,D,answer-letter` lines `_read_csv` reads."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([x["question"], *x["choices"], LETTERS[x["answer"]]] for x in rows)
    return out.getvalue().encode("utf-8")


def _key(item: dict) -> tuple:
    return item["question"].strip(), tuple(item["choices"])


def format_question(item: dict) -> str:
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, item["choices"]))
    return f"{item['question'].strip()}{options}\nAnswer:"


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


@dataclass(frozen=True)
class MMLUConfig(ChoiceTaskConfig):
    """MMLU's options (conf/task/mmlu.yaml): those of every log-likelihood choice task, and:"""

    subjects: Any
    """`all`, or a list of subject names (SUBJECTS), e.g. [abstract_algebra, anatomy]."""

    def validate(self) -> None:
        super().validate()
        if self.num_fewshot > MAX_SHOTS:
            raise HarnessError(f"task.num_fewshot={self.num_fewshot} is out of range; MMLU has {MAX_SHOTS} dev "
                               f"items per subject (0-{MAX_SHOTS})")
        chosen = self.subjects
        listed = isinstance(chosen, (list, tuple)) and all(isinstance(s, str) for s in chosen)
        unknown = [s for s in chosen if s not in SUBJECTS] if listed else []
        if chosen != "all" and (not listed or unknown or not chosen):
            raise HarnessError(f"task.subjects={chosen!r} is invalid: unknown MMLU subject "
                               f"{', '.join(unknown) or '(not a list of names)'}; use `all` or names like "
                               "abstract_algebra (harness/tasks/mmlu.py SUBJECTS)")

    def subject_list(self) -> list[str]:
        return list(SUBJECTS) if self.subjects == "all" else list(self.subjects)


@register
class MMLU(ChoiceTask):
    name = "mmlu"
    cfg: MMLUConfig
    config_class = MMLUConfig

    def __init__(self, cfg: MMLUConfig):
        super().__init__(cfg)
        self.shots: dict[str, list[dict]] = {}  # subject -> dev items, filled by load()

    def load(self, data_cfg: Mapping[str, Any]) -> TaskData:
        c = self.cfg
        k = c.num_fewshot
        subjects = c.subject_list()
        hub, local = c.sources["hub"], c.sources["local"]["subdir"]

        def from_hub():
            split = {s: {sp: hub_loader(hub["path"], s, sp)() for sp in ("test", "dev")} for s in subjects}
            train = [row.get("train", row) for row in hub_loader(hub["path"], hub["train_name"], hub["train_split"])()]
            return split, train, f"{hub['train_name']} (hub)"

        def from_local():
            read = lambda s, sp: read_local(data_cfg.get("dir"), f"{local}/{sp}/{s}_{sp}.csv", lambda path: _read_csv(path, s))
            split = {s: {sp: read(s, sp) for sp in ("test", "dev")} for s in subjects}
            train = [x for s in subjects for x in read(s, "val")]
            return split, train, "val (local source: auxiliary_train is on the hub only; test items are never trained on)"

        kind, (split, train, train_split) = first_available(
            f"task {self.name}", {"hub": from_hub, "local": from_local}, list(data_cfg["order"]))
        evaluation = [x for s in subjects for x in split[s]["test"][: c.n_eval]]
        # MMLU's val split repeats some test items verbatim (27 across subjects): never train on them.
        tested = {_key(x) for s in subjects for x in split[s]["test"]}
        kept = [x for x in train if _key(x) not in tested]
        dropped, train = len(train) - len(kept), kept
        self.shots = {s: split[s]["dev"] for s in subjects}
        name = self.name if k == 0 else f"{self.name}_{k}shot"
        identity = {
            "task": name, "source": kind, "subjects": len(subjects), "train_split": train_split,
            "n_train_pool": len(train), "train_dropped_test_duplicates": dropped, "n_eval": len(evaluation), "num_fewshot": k,
            "train_sha256": hash_object(train, 64), "eval_sha256": hash_object(evaluation, 64),
            "fewshot_sha256": hash_object([self.shots[s][:k] for s in subjects], 64),
        }
        return TaskData(name, train, evaluation, identity)

    def local_datasets(self) -> list[LocalDataset]:
        hub, subdir = self.cfg.sources["hub"]["path"], self.cfg.sources["local"]["subdir"]
        files = (LocalFile(f"{subdir}/{split}/{s}_{split}.csv", functools.partial(_read_csv, subject=s),
                           (HubRequest(hub, s, hub_split),), _csv_bytes)
                 for s in self.cfg.subject_list() for split, hub_split in LOCAL_SPLITS.items())
        return [LocalDataset(subdir, tuple(files))]

    def prompt(self, item: dict, shots: list[dict]) -> str:
        examples = "".join(f"{format_question(x)} {LETTERS[x['answer']]}\n\n" for x in shots)
        return description(item["subject"]) + examples + format_question(item)

    def context(self, item: dict) -> str:
        return self.prompt(item, self.shots[item["subject"]][: self.cfg.num_fewshot])

    def choices(self, item: dict) -> list[str]:
        return [f" {letter}" for letter in LETTERS]

    def training_pair(self, item: dict) -> tuple[str, str]:
        # Zero-shot prompts: shots would multiply the tokens per step without new supervision.
        subject = item.get("subject") or "general knowledge"  # auxiliary_train items have no subject
        return self.prompt({**item, "subject": subject}, []), f" {LETTERS[item['answer']]}"

    def lm_eval_tasks(self, data: TaskData) -> list[tuple[LmEvalTask, list[int]]]:
        parts = []
        for subject in dict.fromkeys(x["subject"] for x in data.eval):
            positions = [i for i, x in enumerate(data.eval) if x["subject"] == subject]
            task = LmEvalTask(f"harness_mmlu_{subject}", f"mmlu/default/mmlu_{subject}.yaml",
                              [data.eval[i] for i in positions], self.shots[subject])
            parts.append((task, positions))
        return parts

    def metrics(self, ctx: EvalContext, data: TaskData, scores: list[list[ChoiceScore]]) -> list[Metric]:
        picked = [best_choice(s) for s in scores]
        correct = [float(p == x["answer"]) for p, x in zip(picked, data.eval)]
        ids, by_subject = [], {}
        for i, x in enumerate(data.eval):
            by_subject.setdefault(x["subject"], []).append(i)
            ids.append(f"{x['subject']}/{len(by_subject[x['subject']]) - 1}")
        rows = [accuracy_metric(ctx, data.name, "acc", correct, [LETTERS[p] for p in picked],
                                [LETTERS[x["answer"]] for x in data.eval], ids, f"mmlu/acc/{VERSION}")]
        subject_stats = {s: mean_and_stderr([correct[i] for i in idx]) for s, idx in by_subject.items()}
        macro = sum(m for m, _ in subject_stats.values()) / len(subject_stats)
        errors = [se for _, se in subject_stats.values()]
        # Subjects are independent samples: the macro mean's variance is the sum of theirs / S^2.
        macro_se = None if None in errors else math.sqrt(sum(se**2 for se in errors)) / len(errors)
        rows.append(Metric(data.name, "acc_macro", macro, macro_se, len(correct), True, f"mmlu/acc_macro/{VERSION}"))
        for category in sorted({SUBJECTS[s] for s in by_subject}):
            values = [correct[i] for s, idx in by_subject.items() if SUBJECTS[s] == category for i in idx]
            mean, se = mean_and_stderr(values)
            rows.append(Metric(data.name, f"acc_{category}", mean, se, len(values), True, f"mmlu/acc_category/{VERSION}"))
        for s, (mean, se) in subject_stats.items():
            rows.append(Metric(data.name, f"acc/{s}", mean, se, len(by_subject[s]), True, f"mmlu/acc_subject/{VERSION}"))
        return rows
