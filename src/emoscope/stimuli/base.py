"""What the stimulus harness runs: a :class:`Task` of :class:`TaskItem` questions and how an
answer is scored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoscope.stimuli.choice import ChoiceQuestion
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "Task",
    "TaskItem",
]


@dataclass(frozen=True)
class TaskItem:
    """One task question: the messages to send and what a right answer is."""

    id: str
    prompt: str
    answer: Any = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def messages(self, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
        """Chat messages for this item, with ``stimulus`` appended to the user prompt."""
        msgs = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*msgs, {"role": "user", "content": apply_stimulus(self.prompt, stimulus)}]


@dataclass
class Task:
    """A named list of items and how to score an answer.

    ``score(item, output)`` returns 1.0/0.0 for right/wrong tasks (``binary``), a number for
    graded tasks, or ``None`` when the answer cannot be parsed (graded tasks only; for binary
    tasks an unparsable answer is simply wrong).

    ``questions(item)``, on multiple-choice tasks, gives the item as
    :class:`~emoscope.stimuli.choice.ChoiceQuestion` s for label scoring (the item is right
    when all its questions are: an EmoBench EU item asks for the emotion and its cause).
    """

    name: str
    items: list[TaskItem]
    score: Callable[[TaskItem, str], float | None]
    binary: bool = True
    max_new_tokens: int = 32
    citation: str = ""
    aggregate: Callable[[list[float]], float] | None = None
    questions: Callable[[TaskItem], list[ChoiceQuestion]] | None = None

    def summary(self, scores: Sequence[float]) -> float:
        """Task-level score from item scores (mean, unless the task defines its own)."""
        vals = list(scores)
        if not vals:
            return float("nan")
        return self.aggregate(vals) if self.aggregate else float(np.mean(vals))
