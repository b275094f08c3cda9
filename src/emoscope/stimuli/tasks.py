"""Tasks by name: small built-in sets (``sentiment``, ``emotion``, ``arithmetic``), EmoBench
(:mod:`emoscope.stimuli.emobench`) and EQ-Bench v2 (:mod:`emoscope.stimuli.eqbench`)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

from emoscope.errors import EmoscopeError
from emoscope.llm.parsing import parse_label
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.choice import ChoiceQuestion
from emoscope.stimuli.emobench import emobench_task
from emoscope.stimuli.eqbench import eqbench_task

__all__ = [
    "BUILTIN_TASKS",
    "TASK_NAMES",
    "load_task",
]

_SENTIMENT = (
    ("The soup was warm and the staff were lovely.", "positive"),
    ("I waited an hour and nobody apologised.", "negative"),
    ("This is the best phone I have owned.", "positive"),
    ("The battery died after two days.", "negative"),
    ("What a wonderful surprise party, thank you all!", "positive"),
    ("The film dragged on and the ending made no sense.", "negative"),
    ("Our guide was patient, funny and knew everything.", "positive"),
    ("The hotel room smelled of smoke and the sheets were stained.", "negative"),
    ("I finally passed my driving test!", "positive"),
    ("They cancelled my order without telling me.", "negative"),
    ("The new park is clean, green and full of kids playing.", "positive"),
    ("My package arrived broken and customer service hung up on me.", "negative"),
    ("The concert was magical from start to finish.", "positive"),
    ("This update made the app slower and buggier.", "negative"),
    ("She cooked us a delicious dinner after the move.", "positive"),
    ("The bus was late again and I missed my interview.", "negative"),
    ("Great value for money, I would buy it again.", "positive"),
    ("The instructions were useless and parts were missing.", "negative"),
    ("We laughed all evening; it was a perfect night.", "positive"),
    ("I regret every cent I spent on this course.", "negative"),
)

_EMOTION = (
    ("How dare they cancel my flight without a word!", "anger"),
    ("He keeps taking credit for my work and I am furious.", "anger"),
    ("The smell from the bin made me want to throw up.", "disgust"),
    ("People who spit on the pavement are revolting.", "disgust"),
    ("I heard footsteps behind me in the dark alley.", "fear"),
    ("My hands shake every time I think about the surgery.", "fear"),
    ("We won the championship and I can't stop smiling!", "joy"),
    ("My best friend is coming to visit tomorrow, yay!", "joy"),
    ("I miss my grandmother so much since she passed away.", "sadness"),
    ("Nobody came to my birthday and I sat alone all night.", "sadness"),
    ("Wait, you're telling me she got married last week?!", "surprise"),
    ("I opened the door and there was a horse in my kitchen.", "surprise"),
    ("The train leaves at 9:15 from platform four.", "neutral"),
    ("Please send the report to the finance team.", "neutral"),
)

_SENTIMENT_PROMPT = (
    "Determine whether the sentiment of the sentence is positive or negative. Answer with one "
    "word: positive or negative.\n\nSentence: {text}"
)
_EMOTION_PROMPT = (
    "Which emotion does the sentence express? Answer with one word from: anger, disgust, fear, "
    "joy, sadness, surprise, neutral.\n\nSentence: {text}"
)


def _label_task(name: str, rows: Sequence[tuple[str, str]], prompt: str) -> Task:
    labels = sorted({lab for _, lab in rows})
    items = [
        TaskItem(f"{name}-{i + 1}", prompt.format(text=t), lab) for i, (t, lab) in enumerate(rows)
    ]

    def score(item: TaskItem, output: str) -> float:
        return float(parse_label(output, labels) == item.answer)

    def questions(item: TaskItem) -> list[ChoiceQuestion]:
        # Label scoring: the label words the prompt asks for are the choices.
        return [ChoiceQuestion(item.id, item.prompt, tuple(labels), labels.index(item.answer))]

    return Task(
        name, items, score, binary=True, max_new_tokens=8, citation="emoscope built-in",
        questions=questions,
    )  # fmt: skip


def _arithmetic_task(n: int = 30, seed: int = 7) -> Task:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        a, b = rng.randint(12, 989), rng.randint(12, 989)
        items.append(
            TaskItem(
                f"arithmetic-{i + 1}", f"What is {a} + {b}? Answer with the number only.", a + b
            )
        )

    def score(item: TaskItem, output: str) -> float:
        m = re.search(r"-?\d[\d,]*", output)
        return float(m is not None and int(m.group(0).replace(",", "")) == item.answer)

    return Task(
        "arithmetic", items, score, binary=True, max_new_tokens=12, citation="emoscope built-in"
    )


BUILTIN_TASKS = ("sentiment", "emotion", "arithmetic")
TASK_NAMES = (*BUILTIN_TASKS, "emobench-eu", "emobench-ea", "eqbench")


def load_task(
    name: str,
    *,
    root: str | Path | None = None,
    language: str = "en",
    limit: int | None = None,
    revise: bool = False,
    presentation: str = "letter",
) -> Task:
    """A task by name: one of :data:`TASK_NAMES`.

    ``root`` is the data root for EmoBench and EQ-Bench; ``limit`` keeps the first items;
    ``revise`` (EQ-Bench) keeps the official first-pass / critique / revised-scores format;
    ``presentation`` (EmoBench, label scoring) scores the choice ``letter`` or its ``text``.
    The multiple-choice tasks (all but ``arithmetic`` and ``eqbench``) can be label-scored.
    """
    key = name.strip().lower()
    if key == "sentiment":
        task = _label_task("sentiment", _SENTIMENT, _SENTIMENT_PROMPT)
    elif key == "emotion":
        task = _label_task("emotion", _EMOTION, _EMOTION_PROMPT)
    elif key == "arithmetic":
        task = _arithmetic_task()
    elif key in ("emobench-eu", "emobench-ea"):
        task = emobench_task(key[-2:].upper(), root, language, presentation)
    elif key == "eqbench":
        task = eqbench_task(root, revise)
    else:
        raise EmoscopeError(f"unknown task {name!r}; expected one of: {', '.join(TASK_NAMES)}")
    if limit is not None:
        task.items = task.items[:limit]
    if not task.items:
        raise EmoscopeError(f"task {name!r} has no items")
    return task
