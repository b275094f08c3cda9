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

from emoscope.llm.base import generate_texts
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "EMOBENCH_CITATION",
    "emobench_messages",
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


def _lettered(choices: Sequence[str]) -> str:
    return "\n".join(f"{_LETTERS[i]}) {c}" for i, c in enumerate(choices))


def emobench_messages(item: Any, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
    """System and user messages for one EmoBench item (an ``EmoBenchItem``).

    The user message follows the structure of the official template (scenario, questions,
    lettered choices); the stimulus, if any, is appended to it.
    """
    lang = item.language if item.language in ("en", "zh") else "en"
    system = _EB_SYSTEM[lang].format(fields=_EB_FIELDS[(item.task, lang)])
    if item.task == "EU":
        if lang == "zh":
            user = (
                f"## 场景\n{item.scenario}\n\n## 问题 1\n"
                f"在这种情况下，{item.subject}最终会感受到什么情绪？\n\n"
                f"## 问题 1 的选项\n{_lettered(item.emotion_choices)}\n\n## 问题 2\n"
                f"{item.subject}为什么会有这些情绪？\n\n"
                f"## 问题 2 的选项\n{_lettered(item.cause_choices)}"
            )
        else:
            user = (
                f"## Scenario\n{item.scenario}\n\n## Question 1\nWhich emotion(s) would "
                f"{item.subject} end up feeling in this situation?\n\n## Choices for Question 1\n"
                f"{_lettered(item.emotion_choices)}\n\n## Question 2\nWhy would {item.subject} "
                f"feel this way in this situation?\n\n## Choices for Question 2\n"
                f"{_lettered(item.cause_choices)}"
            )
    else:
        qtype = item.subcategory.lower()
        if lang == "zh":
            user = (
                f"## 场景\n{item.scenario}\n\n## 问题\n"
                f"在这个场景中，{item.subject}最有效的{item.subcategory}是什么？\n\n"
                f"## 选项\n{_lettered(item.choices)}"
            )
        else:
            user = (
                f"## Scenario\n{item.scenario}\n\n## Question\nIn this scenario, what is the most "
                f"effective {qtype} for {item.subject}?\n\n## Choices\n{_lettered(item.choices)}"
            )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": apply_stimulus(user, stimulus)},
    ]


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


def score_emobench(items: Sequence[Any], outputs: Sequence[str]) -> dict[str, Any]:
    """Official EmoBench scores: accuracy per category and ``Overall`` (0–1), plus counts.

    Categories are EU ``coarse_category`` and EA ``category``; an unparsable answer is wrong.
    """
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    by_cat: dict[str, list[bool]] = {}
    right: list[bool] = []
    unparsed = 0
    for item, out in zip(items, outputs, strict=True):
        ans = parse_emobench_answer(out, item.task)
        unparsed += ans is None
        ok = _emobench_correct(item, ans)
        right.append(ok)
        by_cat.setdefault(item.category, []).append(ok)
    return {
        "accuracy": {cat: float(np.mean(v)) for cat, v in sorted(by_cat.items())}
        | {"Overall": float(np.mean(right)) if right else float("nan")},
        "n": {cat: len(v) for cat, v in sorted(by_cat.items())} | {"Overall": len(right)},
        "unparsed": unparsed,
        "correct": right,
    }


def emobench_task(task: str, root: str | Path | None, language: str) -> Task:
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

    return Task(
        f"emobench-{task.lower()}", items, score, binary=True, max_new_tokens=64,
        citation=EMOBENCH_CITATION,
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
) -> dict[str, Any]:
    """Run EmoBench EU or EA on a chat backend and score it the official way."""
    from emoscope.datasets import load_emobench

    items = load_emobench(task, root, language)[:limit]
    convs = [emobench_messages(it, stimulus) for it in items]
    outs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=max_new_tokens
        )
    result = score_emobench(items, outs)
    result.update({"task": task.upper(), "language": language, "citation": EMOBENCH_CITATION})
    result["stimulus"] = stimulus.id if isinstance(stimulus, Stimulus) else stimulus
    return result
