"""EmoBench (Sabour et al., 2024, "EmoBench: Evaluating the Emotional Intelligence of Large
Language Models", ACL 2024), scored as its authors do.

An EU item counts as right only if both the emotion and the cause are right; EA items by their
single answer; accuracy per category (EU ``coarse_category``, EA ``category``) and overall
(github.com/Sahandfer/EmoBench, ``src/data.py``). Answers are the JSON object the official
prompt asks for (``answer_q1``/``answer_q2`` or ``answer`` holding a choice letter). The prompt
wording here is emoscope's paraphrase of the official template. The items are read by
:func:`emoscope.datasets.load_emobench`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.choice import ChoiceQuestion, score_questions
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "EMOBENCH_CITATION",
    "PRESENTATIONS",
    "emobench_messages",
    "emobench_questions",
    "emobench_summary",
    "emobench_task",
    "parse_emobench_answer",
    "run_emobench",
    "score_emobench",
]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EMOBENCH_CITATION = (
    "Sabour, S., Liu, S., Zhang, Z., Liu, J. M., Zhou, J., Sunaryo, A. S., Li, J., Lee, T. M. C., "
    "Mihalcea, R., & Huang, M. (2024). EmoBench: Evaluating the Emotional Intelligence of Large "
    "Language Models. ACL 2024."
)
_EB_SYSTEM = {
    "en": (
        "# Instructions\n\nYou will read a scenario, one or more questions and lettered choices. "
        "Put yourself in the place of the person involved, think about how they see the "
        "situation, and pick the choice that best matches their perspective or emotional "
        "reaction.\n\n# Output\n\nGive exactly one answer per question and nothing else: no "
        "explanation, only this JSON object:\n```json\n{fields}\n```"
    ),
    "zh": (
        "# 说明\n\n你将读到一个场景、一个或多个问题以及带字母的选项。"
        "请站在当事人的角度思考，选出最符合其观点或情绪反应的选项。\n\n# 输出\n\n"
        "每个问题只给一个答案，不要解释，只输出以下JSON：\n"
        "```json\n{fields}\n```"
    ),
}
_EB_FIELDS = {
    ("EU", "en"): '{\n  "answer_q1": "<letter of your choice for Question 1>",\n'
    '  "answer_q2": "<letter of your choice for Question 2>"\n}',
    (
        "EU",
        "zh",
    ): '{\n  "answer_q1": "<问题1所选选项的字母>",\n  "answer_q2": "<问题2所选选项的字母>"\n}',
    ("EA", "en"): '{\n  "answer": "<letter of your choice>"\n}',
    ("EA", "zh"): '{\n  "answer": "<所选选项的字母>"\n}',
}


_HEADINGS = {
    "en": ("Scenario", "Question", ("Choices", "Choices for Question{num}")),
    "zh": ("场景", "问题", ("选项", "问题{num} 的选项")),
}
PRESENTATIONS = ("letter", "text")
_MC_INTRO = {
    "en": (
        "You will read a scenario, a question and lettered choices. Put yourself in the place "
        "of the person involved, think about how they see the situation, and pick the choice "
        "that best matches their perspective or emotional reaction. "
    ),
    "zh": (
        "你将读到一个场景、一个问题以及带字母的选项。"
        "请站在当事人的角度思考，选出最符合其观点或情绪反应的选项。"
    ),
}
_MC_SYSTEM = {
    ("en", "letter"): _MC_INTRO["en"] + "Reply with the letter of your choice only.",
    ("en", "text"): _MC_INTRO["en"] + "Reply with the text of your choice only.",
    ("zh", "letter"): _MC_INTRO["zh"] + "只回答所选选项的字母。",
    ("zh", "text"): _MC_INTRO["zh"] + "只回答所选选项的内容。",
}


def _lettered(choices: Sequence[str]) -> str:
    return "\n".join(f"{_LETTERS[i]}) {c}" for i, c in enumerate(choices))


def _questions(item: Any, lang: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(question, choices, right choice) of an item: EU's emotion and cause, or EA's one."""
    if item.task == "EU":
        if lang == "zh":
            q1 = f"在这种情况下，{item.subject}最终会感受到什么情绪？"
            q2 = f"{item.subject}为什么会有这些情绪？"
        else:
            q1 = f"Which emotion(s) would {item.subject} end up feeling in this situation?"
            q2 = f"Why would {item.subject} feel this way in this situation?"
        return [
            (q1, tuple(item.emotion_choices), item.emotion_label),
            (q2, tuple(item.cause_choices), item.cause_label),
        ]
    if lang == "zh":
        q = f"在这个场景中，{item.subject}最有效的{item.subcategory}是什么？"
    else:
        q = (
            f"In this scenario, what is the most effective {item.subcategory.lower()} for "
            f"{item.subject}?"
        )
    return [(q, tuple(item.choices), item.label)]


def _language(item: Any) -> str:
    return str(item.language) if item.language in ("en", "zh") else "en"


def emobench_messages(item: Any, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
    """System and user messages for one EmoBench item (an ``EmoBenchItem``).

    The user message follows the structure of the official template (scenario, questions,
    lettered choices); the stimulus, if any, is appended to it.
    """
    lang = _language(item)
    system = _EB_SYSTEM[lang].format(fields=_EB_FIELDS[(item.task, lang)])
    scen, question, options = _HEADINGS[lang]
    qs = _questions(item, lang)
    parts = [f"## {scen}\n{item.scenario}"]
    for k, (q, choices, _) in enumerate(qs, start=1):
        num = f" {k}" if len(qs) > 1 else ""
        opts = options[1].format(num=num) if num else options[0]
        parts += [f"## {question}{num}\n{q}", f"## {opts}\n{_lettered(choices)}"]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": apply_stimulus("\n\n".join(parts), stimulus)},
    ]


def emobench_questions(item: Any, presentation: str = "letter") -> list[ChoiceQuestion]:
    """An EmoBench item as multiple-choice questions for label scoring (EU: 2, EA: 1).

    Each question is asked on its own, after the scenario, with its choices listed by letter.
    ``presentation="letter"`` scores the letters (as lm-eval's MMLU task; the instruction asks
    for the letter only); ``"text"`` scores each choice's full text after the same list (the
    instruction asks for the text of the choice). An EU item is right when both its emotion
    and its cause are.
    """
    if presentation not in PRESENTATIONS:
        raise EmoscopeError(
            f"unknown presentation {presentation!r}; expected one of: {', '.join(PRESENTATIONS)}"
        )
    lang = _language(item)
    scen, question, options = _HEADINGS[lang]
    system = _MC_SYSTEM[(lang, presentation)]
    out = []
    for k, (q, choices, right) in enumerate(_questions(item, lang), start=1):
        prompt = (
            f"## {scen}\n{item.scenario}\n\n## {question}\n{q}\n\n"
            f"## {options[0]}\n{_lettered(choices)}"
        )
        scored = tuple(_LETTERS[: len(choices)]) if presentation == "letter" else choices
        out.append(
            ChoiceQuestion(f"{item.id}-q{k}", prompt, scored, choices.index(right), system=system)
        )
    return out


def parse_emobench_answer(text: str, task: str) -> dict[str, str] | None:
    """The choice letters of an EmoBench answer, or ``None`` if there are none.

    Reads the JSON object (inside a ```` ```json ```` fence or bare); if that fails, looks for
    ``"answer_q1": "B"``-style pairs. Letters are upper-cased; a value such as ``"B) text"``
    counts as ``B``.
    """
    keys = ("answer_q1", "answer_q2") if task == "EU" else ("answer",)
    obj: Any = None
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    candidates += re.findall(r"\{[^{}]*\}", text, re.S)
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and any(k in obj for k in keys):
            break
        obj = None
    found: dict[str, str] = {}
    for k in keys:
        raw: Any = obj.get(k) if isinstance(obj, dict) else None
        if raw is None:
            m = re.search(rf'"?{k}"?\s*[:=]\s*"?\s*([A-Za-z])\b', text)
            raw = m.group(1) if m else None
        if raw is None:
            continue
        m2 = re.match(r"\s*\(?([A-Za-z])\b", str(raw))
        if m2:
            found[k] = m2.group(1).upper()
    return found if len(found) == len(keys) else None


def _emobench_correct(item: Any, answer: Mapping[str, str] | None) -> bool:
    if answer is None:
        return False
    if item.task == "EU":
        emo = _LETTERS[item.emotion_choices.index(item.emotion_label)]
        cause = _LETTERS[item.cause_choices.index(item.cause_label)]
        return answer.get("answer_q1") == emo and answer.get("answer_q2") == cause
    return answer.get("answer") == _LETTERS[item.choices.index(item.label)]


def emobench_summary(items: Sequence[Any], correct: Sequence[bool]) -> dict[str, Any]:
    """EmoBench accuracy per category and ``Overall`` (0–1) of per-item right/wrong outcomes.

    Categories are EU ``coarse_category`` and EA ``category``, as the official scorer groups.
    """
    if len(items) != len(correct):
        raise ValueError(f"{len(items)} items but {len(correct)} outcomes")
    by_cat: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct, strict=True):
        by_cat.setdefault(item.category, []).append(bool(ok))
    right = [bool(ok) for ok in correct]
    return {
        "accuracy": {cat: float(np.mean(v)) for cat, v in sorted(by_cat.items())}
        | {"Overall": float(np.mean(right)) if right else float("nan")},
        "n": {cat: len(v) for cat, v in sorted(by_cat.items())} | {"Overall": len(right)},
        "correct": right,
    }


def score_emobench(items: Sequence[Any], outputs: Sequence[str]) -> dict[str, Any]:
    """Official EmoBench scores: accuracy per category and ``Overall`` (0–1), plus counts.

    Categories are EU ``coarse_category`` and EA ``category``; an unparsable answer is wrong.
    """
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    answers = [
        parse_emobench_answer(out, item.task) for item, out in zip(items, outputs, strict=True)
    ]
    result = emobench_summary(
        items, [_emobench_correct(it, ans) for it, ans in zip(items, answers, strict=True)]
    )
    result["unparsed"] = sum(a is None for a in answers)
    return result


def emobench_task(
    task: str, root: str | Path | None, language: str, presentation: str = "letter"
) -> Task:
    from emoscope.datasets import load_emobench

    bench = load_emobench(task, root, language)
    items = [
        TaskItem(
            it.id,
            emobench_messages(it)[1]["content"],
            it,
            system=emobench_messages(it)[0]["content"],
            meta={"category": it.category},
        )
        for it in bench
    ]

    def score(item: TaskItem, output: str) -> float:
        return float(_emobench_correct(item.answer, parse_emobench_answer(output, task)))

    def questions(item: TaskItem) -> list[ChoiceQuestion]:
        return emobench_questions(item.answer, presentation)

    return Task(
        f"emobench-{task.lower()}", items, score, binary=True, max_new_tokens=64,
        citation=EMOBENCH_CITATION, questions=questions,
    )  # fmt: skip


def run_emobench(
    backend: Any,
    task: str = "EU",
    *,
    language: str = "en",
    stimulus: Stimulus | str | None = None,
    root: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    scoring: str = "generate",
    presentation: str = "letter",
) -> dict[str, Any]:
    """Run EmoBench EU or EA on a chat backend and score it.

    ``scoring="generate"``: the model writes the JSON answer of the official protocol, which
    is parsed (an unparsable answer is wrong; ``unparsed`` counts them). ``scoring="label"``:
    each question's choices are scored by log-likelihood (:mod:`emoscope.stimuli.choice`,
    ``presentation`` ``letter`` or ``text``; the backend must score choices), nothing is
    parsed. Both report the official accuracy per category.
    """
    from emoscope.datasets import load_emobench

    items = load_emobench(task, root, language)[:limit]
    if scoring == "label":
        qs = [emobench_questions(it, presentation) for it in items]
        flat = [q for item_qs in qs for q in item_qs]
        scored = iter(score_questions(backend, flat, (stimulus,)))
        right = [all(next(scored)[0].correct for _ in item_qs) for item_qs in qs]
        result = emobench_summary(items, right)
        result.update({"scoring": "label", "presentation": presentation})
    elif scoring == "generate":
        convs = [emobench_messages(it, stimulus) for it in items]
        outs: list[str] = []
        for start in range(0, len(convs), batch_size):
            outs += generate_texts(
                backend, convs[start : start + batch_size], max_new_tokens=max_new_tokens
            )
        result = score_emobench(items, outs)
        result["scoring"] = "generate"
    else:
        raise EmoscopeError(f"unknown scoring {scoring!r}; expected generate or label")
    result.update({"task": task.upper(), "language": language, "citation": EMOBENCH_CITATION})
    result["stimulus"] = stimulus.id if isinstance(stimulus, Stimulus) else stimulus
    return result
