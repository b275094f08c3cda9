"""The zero-shot baseline of the probes: the model itself is asked for the label through a chat
backend (:mod:`emoscope.stimuli` documents the backend protocol), its answer read by
:func:`emoscope.llm.parsing.parse_label`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.llm.base import generate_texts
from emoscope.llm.parsing import parse_label
from emoscope.stats import bootstrap_ci, classification_scores

if TYPE_CHECKING:
    pass

__all__ = [
    "zero_shot_baseline",
    "zero_shot_prompt",
]


def zero_shot_prompt(text: str, labels: Sequence[str]) -> str:
    """The classification question put to the model in the zero-shot baseline."""
    return (
        "Which emotion does the following text express? Answer with exactly one word from this "
        f"list: {', '.join(labels)}.\n\nText: {text}\n\nEmotion:"
    )


def zero_shot_baseline(
    backend: Any,
    texts: Sequence[str],
    gold: Sequence[int],
    labels: Sequence[str],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Ask the model for the label of each text through a chat backend; score its answers.

    An answer naming none of ``labels`` counts as wrong (and in ``unparsed``).
    """
    convs = [[{"role": "user", "content": zero_shot_prompt(t, labels)}] for t in texts]
    outputs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outputs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=max_new_tokens
        )
    parsed = [parse_label(o, labels) for o in outputs]
    index = {lab: i for i, lab in enumerate(labels)}
    pred = np.array([index[p] if p is not None else -1 for p in parsed])
    y = np.asarray(gold)
    acc, f1 = classification_scores(y, pred)
    ci = bootstrap_ci(y, pred, n_boot=n_boot, seed=seed)
    return {
        "n": len(texts),
        "accuracy": acc,
        "accuracy_ci": ci["accuracy"],
        "macro_f1": f1,
        "macro_f1_ci": ci["macro_f1"],
        "unparsed": int(sum(p is None for p in parsed)),
        "prompt": zero_shot_prompt("{text}", labels),
        "examples": [
            {"text": t, "output": o} for t, o in list(zip(texts, outputs, strict=True))[:5]
        ],
    }
