"""Multiple-choice questions scored by the log-likelihood of each choice (label scoring).

As lm-evaluation-harness scores multiple choice (Gao et al., "A framework for few-shot language
model evaluation", github.com/EleutherAI/lm-evaluation-harness), the model is not asked to
write an answer that must then be parsed: each choice is scored by the sum of its tokens'
log-probabilities as the start of the assistant's reply
(:func:`emoscope.llm.scoring.score_prompts`), and the most likely choice is the answer. A small
model that cannot follow an output format ("D) ..." instead of the JSON asked for) still gets
a reading of what it prefers.

How choices are presented is part of the question (:attr:`ChoiceQuestion.choices` is what is
scored): EmoBench items (:mod:`emoscope.stimuli.emobench`) list their choices with letters and
score the letters, as lm-eval's MMLU task does (one token per choice, so every choice is read
off one forward pass and long choices are not penalised for their length), or, with
``presentation="text"``, score each choice's full text after the same list (the continuation
form of lm-eval's ARC/HellaSwag tasks; a sum of log-probabilities, which favours short
choices). The built-in label tasks score the label word the prompt asks for.

Only backends that can score choices (``score(conversations, choices)``, as
:class:`emoscope.llm.hf.HFBackend` does) run here; :func:`require_scorer` gives a clear error
for the others (an OpenAI-protocol server returns text, not the likelihood of given answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import can_score
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "LETTERS",
    "ChoiceQuestion",
    "ChoiceResult",
    "require_scorer",
    "score_questions",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ChoiceQuestion:
    """One multiple-choice question: the prompt, the choice strings scored, the right one.

    ``choices`` are the strings whose likelihood as the reply is compared (letters, choice
    texts or label words); ``answer`` is the index of the right one.
    """

    id: str
    prompt: str
    choices: tuple[str, ...]
    answer: int
    system: str | None = None

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise EmoscopeError(f"question {self.id!r} needs at least two choices")
        if not 0 <= self.answer < len(self.choices):
            raise EmoscopeError(
                f"question {self.id!r}: answer index {self.answer} is not one of its "
                f"{len(self.choices)} choices"
            )

    def messages(self, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
        """Chat messages for this question, with ``stimulus`` appended to the user prompt."""
        msgs = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*msgs, {"role": "user", "content": apply_stimulus(self.prompt, stimulus)}]


@dataclass(frozen=True)
class ChoiceResult:
    """The scores of one question under one condition."""

    question: str
    condition: str
    loglik: tuple[float, ...]
    predicted: int
    correct: bool


def require_scorer(backend: object) -> None:
    """Raise a clear error unless ``backend`` can score choices (``score(convs, choices)``)."""
    if not can_score(backend):
        name = getattr(backend, "name", type(backend).__name__)
        raise EmoscopeError(
            f"label scoring needs a backend that scores given answers (score(conversations, "
            f"choices), as the hf backend does); the {name} backend only generates text: use "
            "--backend hf or the generation mode"
        )


def _condition_name(stimulus: Stimulus | str | None) -> str:
    if stimulus is None:
        return "baseline"
    return stimulus.id if isinstance(stimulus, Stimulus) else stimulus


def score_questions(
    backend: object,
    questions: Sequence[ChoiceQuestion],
    conditions: Sequence[Stimulus | str | None] = (None,),
) -> list[list[ChoiceResult]]:
    """Score every question under every condition (``None``: the plain prompt).

    Returns one list per question with one :class:`ChoiceResult` per condition. With several
    conditions, each question's conversations go to the backend together (they share the
    question's tokens up to the stimulus, which the hf backend then runs once); with one,
    questions with the same choices are batched together.
    """
    require_scorer(backend)
    if not conditions:
        raise EmoscopeError("score_questions needs at least one condition")
    names = [_condition_name(c) for c in conditions]
    score = backend.score  # type: ignore[attr-defined]
    out: list[list[ChoiceResult]] = [[] for _ in questions]

    def record(qi: int, ci: int, row: Sequence[float]) -> None:
        q = questions[qi]
        ll = tuple(float(x) for x in np.asarray(row, dtype=np.float64))
        if len(ll) != len(q.choices):
            raise EmoscopeError(f"backend returned {len(ll)} scores for {len(q.choices)} choices")
        pred = int(np.argmax(ll))
        out[qi].append(ChoiceResult(q.id, names[ci], ll, pred, pred == q.answer))

    if len(conditions) > 1:
        for qi, q in enumerate(questions):
            rows = score([q.messages(c) for c in conditions], list(q.choices))
            for ci, row in enumerate(rows):
                record(qi, ci, row)
        return out
    groups: dict[tuple[str, ...], list[int]] = {}
    for qi, q in enumerate(questions):
        groups.setdefault(q.choices, []).append(qi)
    for choices, idx in groups.items():
        rows = score([questions[qi].messages(conditions[0]) for qi in idx], list(choices))
        for qi, row in zip(idx, rows, strict=True):
            record(qi, 0, row)
    return out
