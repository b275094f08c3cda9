"""HEART-style feedback rounds: Pinto et al. (2025), "HEART: Emotionally-driven test-time
scaling of Language Models", arXiv:2509.22876.

After a wrong answer (judged by a verifier callback) the model gets emotionally coloured
feedback, the emotion changing from round to round, and answers again; an affect-free feedback
of the same number of rounds is the control. The phrases are emoscope's own, not the paper's
set (``stimuli.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts
from emoscope.stimuli.sets import stimulus_info

__all__ = [
    "HeartResult",
    "heart_rounds",
]


@dataclass
class HeartResult:
    """Outcome of feedback rounds for one conversation."""

    text: str
    correct: bool
    rounds_used: int
    transcript: list[dict[str, str]]


def heart_rounds(
    backend: Any,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    verifiers: Sequence[Callable[[str], bool]],
    *,
    rounds: int = 3,
    affective: bool = True,
    emotions: Sequence[str] | None = None,
    max_new_tokens: int | None = None,
) -> list[HeartResult]:
    """Answer, check with the verifier, give feedback, answer again, up to ``rounds`` retries.

    Round 0 is the plain answer. After each wrong answer the conversation gets the answer and
    a feedback message: with ``affective`` the phrase of the next emotion in ``emotions``
    (default: the HEART cycle of the data file, alternating critical and encouraging tones),
    otherwise the affect-free control phrase. Conversations are processed as a batch; each
    stops at its first verified answer.
    """
    if len(conversations) != len(verifiers):
        raise EmoscopeError(f"{len(conversations)} conversations but {len(verifiers)} verifiers")
    if rounds < 0:
        raise EmoscopeError(f"rounds must be >= 0, got {rounds}")
    heart = stimulus_info()["heart"]
    cycle = list(emotions) if emotions is not None else list(heart["cycle"])
    unknown = [e for e in cycle if e not in heart["feedback"]]
    if unknown:
        raise EmoscopeError(
            f"no HEART feedback for {unknown}; known: {', '.join(heart['feedback'])}"
        )
    states = [[dict(m) for m in c] for c in conversations]
    results: list[HeartResult | None] = [None] * len(states)
    last = [""] * len(states)
    for r in range(rounds + 1):
        todo = [i for i, res in enumerate(results) if res is None]
        if not todo:
            break
        outs = generate_texts(backend, [states[i] for i in todo], max_new_tokens=max_new_tokens)
        for i, out in zip(todo, outs, strict=True):
            last[i] = out
            states[i].append({"role": "assistant", "content": out})
            if verifiers[i](out):
                results[i] = HeartResult(out, True, r, states[i])
            elif r < rounds:
                phrase = (
                    heart["feedback"][cycle[r % len(cycle)]]
                    if affective
                    else heart["neutral_feedback"]
                )
                states[i].append({"role": "user", "content": phrase})
    return [
        res if res is not None else HeartResult(last[i], False, rounds, states[i])
        for i, res in enumerate(results)
    ]
