"""EmoBench (Sabour et al., 2024): multiple-choice tests of emotional intelligence.

Files: ``emobench/EU.jsonl`` (emotional understanding: which emotion does the subject feel and
why) and ``emobench/EA.jsonl`` (emotional application: what should the subject do or say),
one JSON object per line, each question in English (``en``) and Chinese (``zh``) with the
same ``qid``.

EU fields: ``qid, language, coarse_category, finegrained_category, scenario, subject,
emotion_choices, emotion_label, cause_choices, cause_label``.
EA fields: ``qid, language, category, question type, scenario, subject, choices, label``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoscope.datasets._common import (
    BadRows,
    DatasetOptionError,
    dataset_file,
    get_info,
    iter_jsonl,
)
from emoscope.errors import DataError

__all__ = ["LANGUAGES", "TASKS", "EmoBenchItem", "load_emobench"]

TASKS = ("EU", "EA")
LANGUAGES = ("en", "zh")
_EXPECTED = {
    "EU": "one JSON object per line with qid, language, coarse_category, finegrained_category, "
    "scenario, subject, emotion_choices, emotion_label (one of emotion_choices), "
    "cause_choices, cause_label (one of cause_choices)",
    "EA": "one JSON object per line with qid, language, category, question type, scenario, "
    "subject, choices, label (one of choices)",
}


@dataclass(frozen=True)
class EmoBenchItem:
    """One EmoBench question.

    Attributes:
        qid: question id (shared by the English and Chinese versions).
        language: ``en`` or ``zh``.
        task: ``EU`` (understanding) or ``EA`` (application).
        category: EU ``coarse_category`` or EA ``category``.
        subcategory: EU ``finegrained_category`` or EA ``question type``.
        scenario: the situation described.
        subject: the person whose emotion or action is asked about.
        emotion_choices, emotion_label: EU: candidate emotions and the right one.
        cause_choices, cause_label: EU: candidate causes and the right one.
        choices, label: EA: candidate actions or responses and the best one.
        line: line of the item in its file.
    """

    qid: str
    language: str
    task: str
    category: str
    subcategory: str
    scenario: str
    subject: str
    emotion_choices: tuple[str, ...] = ()
    emotion_label: str | None = None
    cause_choices: tuple[str, ...] = ()
    cause_label: str | None = None
    choices: tuple[str, ...] = ()
    label: str | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        """A unique id across tasks and languages, e.g. ``EU-en-12``."""
        return f"{self.task}-{self.language}-{self.qid}"


def _string(obj: dict[str, Any], key: str, path: Path, line: int, expected: str) -> str:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        problem = f"missing field {key!r}" if key not in obj else f"{key} is {value!r}"
        raise DataError(path, line, problem, expected)
    return value.strip()


def _choice(
    obj: dict[str, Any], choices_key: str, label_key: str, path: Path, line: int, expected: str
) -> tuple[tuple[str, ...], str]:
    raw = obj.get(choices_key)
    if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(c, str) for c in raw):
        raise DataError(path, line, f"{choices_key} is {raw!r}", expected)
    choices = tuple(c.strip() for c in raw)
    if len(set(choices)) != len(choices):
        raise DataError(path, line, f"{choices_key} repeats a choice", expected)
    label = _string(obj, label_key, path, line, expected)
    if label not in choices:
        raise DataError(
            path, line, f"{label_key} {label!r} is not among the {choices_key}", expected
        )
    return choices, label


def load_emobench(
    task: str = "EU",
    root: str | Path | None = None,
    language: str | None = "en",
    *,
    skip_bad: bool = False,
) -> list[EmoBenchItem]:
    """Load the EmoBench questions of one task.

    Args:
        task: ``EU`` (emotional understanding) or ``EA`` (emotional application).
        root: the data directory; see :func:`~emoscope.datasets.data_root`.
        language: ``en``, ``zh``, or ``None`` for both (each question then appears twice).
        skip_bad: skip malformed lines (with a warning) instead of raising.

    Every label is checked to be one of its choices.

    Raises:
        DatasetOptionError: unknown task or language.
        DatasetNotFoundError: the task's file is missing.
        DataError: a malformed line (unless ``skip_bad``).
    """
    task_u = task.strip().upper()
    if task_u not in TASKS:
        raise DatasetOptionError(f"unknown EmoBench task {task!r}; expected EU or EA")
    if language is not None and language not in LANGUAGES:
        raise DatasetOptionError(
            f"unknown EmoBench language {language!r}; expected en, zh or None for both"
        )
    path = dataset_file("emobench", get_info("emobench").files[task_u], root)
    expected = _EXPECTED[task_u]
    bad = BadRows(skip_bad)
    items: list[EmoBenchItem] = []
    for line, obj in iter_jsonl(path, bad, expected=expected):
        with bad:
            if not isinstance(obj, dict):
                raise DataError(path, line, f"a JSON {type(obj).__name__}", expected)
            lang = _string(obj, "language", path, line, expected)
            if language is not None and lang != language:
                continue
            qid = _string(obj, "qid", path, line, expected)
            scenario = _string(obj, "scenario", path, line, expected)
            subject = _string(obj, "subject", path, line, expected)
            if task_u == "EU":
                emotions, emotion = _choice(
                    obj, "emotion_choices", "emotion_label", path, line, expected
                )
                causes, cause = _choice(obj, "cause_choices", "cause_label", path, line, expected)
                item = EmoBenchItem(
                    qid=qid,
                    language=lang,
                    task=task_u,
                    category=_string(obj, "coarse_category", path, line, expected),
                    subcategory=_string(obj, "finegrained_category", path, line, expected),
                    scenario=scenario,
                    subject=subject,
                    emotion_choices=emotions,
                    emotion_label=emotion,
                    cause_choices=causes,
                    cause_label=cause,
                    line=line,
                )
            else:
                choices, label = _choice(obj, "choices", "label", path, line, expected)
                item = EmoBenchItem(
                    qid=qid,
                    language=lang,
                    task=task_u,
                    category=_string(obj, "category", path, line, expected),
                    subcategory=_string(obj, "question type", path, line, expected),
                    scenario=scenario,
                    subject=subject,
                    choices=choices,
                    label=label,
                    line=line,
                )
            items.append(item)
    bad.finish()
    return items
