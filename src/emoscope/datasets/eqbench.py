"""EQ-Bench v2 (Paech, 2023): rate the intensity of four emotions of a dialogue character.

File: ``eqbench/eq_bench_v2_questions_171.json``, a JSON object mapping question ids
(``"1"``...``"171"``) to ``{"prompt", "reference_answer", "reference_answer_fullscale"}``.
A reference answer has ``emotion1``..``emotion4`` (names) and ``emotion1_score``..
``emotion4_score`` (intensities 0–10; in the ``fullscale`` variant some are strings). The
prompt embeds the dialogue between ``...in this dialogue:`` and ``[End dialogue]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoscope.datasets._common import (
    BadRows,
    dataset_file,
    get_info,
    iter_json_members,
)
from emoscope.errors import DataError

__all__ = ["EQBenchItem", "load_eqbench"]

EXPECTED = (
    "a JSON object mapping question ids to {prompt, reference_answer} where reference_answer "
    "has emotion1..emotion4 (names) and emotion1_score..emotion4_score (0-10)"
)
_DIALOGUE = re.compile(r"dialogue:[ \t]*\n(.*?)\n\s*\[End dialogue\]", re.S)
_CHARACTER = re.compile(
    r"At the end of this dialogue, (.+?)(?: would feel|'s emotional state)", re.S
)


@dataclass(frozen=True)
class EQBenchItem:
    """One EQ-Bench question.

    Attributes:
        id: question id.
        prompt: the full prompt given to the model (dialogue, emotions, answer format).
        dialogue: the dialogue text inside the prompt, if it could be found.
        character: whose emotions are asked about, if it could be found.
        emotions: the four emotion names, in prompt order.
        reference: emotion → reference intensity (0–10), from ``reference_answer``.
        reference_fullscale: the same from ``reference_answer_fullscale``, when present.
        line: line of the question in the file.
    """

    id: str
    prompt: str
    dialogue: str | None
    emotions: tuple[str, ...]
    reference: dict[str, float]
    character: str | None = None
    reference_fullscale: dict[str, float] | None = None
    line: int | None = field(default=None, compare=False)


def _reference(
    value: Any, key: str, qid: str, path: Path, line: int
) -> tuple[tuple[str, ...], dict[str, float]]:
    where = f"question {qid!r}, {key}"
    if not isinstance(value, dict):
        raise DataError(path, line, f"{where} is not an object", EXPECTED)
    names: list[str] = []
    scores: dict[str, float] = {}
    for i in range(1, 5):
        name = value.get(f"emotion{i}")
        raw = value.get(f"emotion{i}_score")
        if not isinstance(name, str) or not name.strip():
            raise DataError(path, line, f"{where}: emotion{i} is {name!r}", EXPECTED)
        try:
            score = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            score = float("nan")
        if not 0.0 <= score <= 10.0:
            raise DataError(path, line, f"{where}: emotion{i}_score is {raw!r}", EXPECTED)
        name = name.strip()
        if name in scores:
            raise DataError(path, line, f"{where}: emotion {name!r} listed twice", EXPECTED)
        names.append(name)
        scores[name] = score
    return tuple(names), scores


def load_eqbench(root: str | Path | None = None, *, skip_bad: bool = False) -> list[EQBenchItem]:
    """Load the 171 EQ-Bench v2 questions, sorted by numeric id.

    Raises:
        DatasetNotFoundError: the question file is missing.
        DataError: malformed JSON (always) or a malformed question (unless ``skip_bad``).
    """
    path = dataset_file("eqbench", get_info("eqbench").files["test"], root)
    bad = BadRows(skip_bad)
    items: list[EQBenchItem] = []
    for line, qid, obj in iter_json_members(path, expected=EXPECTED):
        with bad:
            if not isinstance(obj, dict):
                raise DataError(path, line, f"question {qid!r} is not an object", EXPECTED)
            prompt = obj.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError(path, line, f"question {qid!r} has no prompt", EXPECTED)
            emotions, reference = _reference(
                obj.get("reference_answer"), "reference_answer", qid, path, line
            )
            fullscale: dict[str, float] | None = None
            if obj.get("reference_answer_fullscale") is not None:
                names, fullscale = _reference(
                    obj["reference_answer_fullscale"], "reference_answer_fullscale", qid, path, line
                )
                if set(names) != set(emotions):
                    raise DataError(
                        path,
                        line,
                        f"question {qid!r}: the two references name different emotions",
                        EXPECTED,
                    )
            m = _DIALOGUE.search(prompt)
            c = _CHARACTER.search(prompt)
            items.append(
                EQBenchItem(
                    id=qid,
                    prompt=prompt,
                    dialogue=m.group(1).strip() if m else None,
                    emotions=emotions,
                    reference=reference,
                    character=c.group(1).strip() if c else None,
                    reference_fullscale=fullscale,
                    line=line,
                )
            )
    bad.finish()
    items.sort(key=lambda it: (0, int(it.id), "") if it.id.isdigit() else (1, 0, it.id))
    return items
