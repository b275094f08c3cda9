"""The zero-shot baseline of the probes: the model itself is asked for the label.

Two ways: :func:`zero_shot_baseline` generates an answer through any chat backend
(:mod:`emoscope.stimuli` documents the backend protocol) and reads it with
:func:`emoscope.llm.parsing.parse_label`; :func:`zero_shot_scored` scores every label word by
its log-likelihood as the reply (label scoring, as lm-evaluation-harness scores multiple
choice; :mod:`emoscope.llm.scoring`), so each text gets a distribution and nothing is parsed.
Its distribution is calibrated by contextual calibration and temperature
(:class:`~emoscope.llm.scoring.LabelCalibration`, Zhao et al., 2021) fitted on development
texts, never on the texts scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import can_score, generate_texts
from emoscope.llm.parsing import parse_label
from emoscope.stats import bootstrap_ci, classification_scores

if TYPE_CHECKING:
    from emoscope.llm.scoring import LabelCalibration

__all__ = [
    "zero_shot_baseline",
    "zero_shot_prompt",
    "zero_shot_scored",
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


def _label_scores(
    backend: Any, texts: Sequence[str], labels: Sequence[str], batch_size: int
) -> np.ndarray:
    """Log-likelihood of each label word as the reply to the zero-shot prompt, (n, n_labels)."""
    convs = [[{"role": "user", "content": zero_shot_prompt(t, labels)}] for t in texts]
    rows: list[Any] = []
    for start in range(0, len(convs), batch_size):
        rows += backend.score(convs[start : start + batch_size], list(labels))
    return np.asarray(np.stack(rows), dtype=np.float64).reshape(len(texts), len(labels))


def _scored_row(
    probs: np.ndarray, y: np.ndarray, labels: Sequence[str], n_boot: int, seed: int
) -> dict[str, Any]:
    from emoscope.metrics import expected_calibration_error

    pred = probs.argmax(axis=1)
    acc, f1 = classification_scores(y, pred)
    ci = bootstrap_ci(y, pred, n_boot=n_boot, seed=seed)
    p_gold = probs[np.arange(len(y)), y]
    return {
        "accuracy": acc,
        "accuracy_ci": ci["accuracy"],
        "macro_f1": f1,
        "macro_f1_ci": ci["macro_f1"],
        "nll": float(-np.log(np.clip(p_gold, 1e-12, None)).mean()),
        "ece": float(expected_calibration_error(probs.max(axis=1), pred == y)),
        "predicted_counts": dict(
            zip(labels, np.bincount(pred, minlength=len(labels)).tolist(), strict=True)
        ),
    }


def zero_shot_scored(
    backend: Any,
    texts: Sequence[str],
    gold: Sequence[int],
    labels: Sequence[str],
    *,
    dev_texts: Sequence[str],
    dev_gold: Sequence[int],
    batch_size: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot label scoring: a distribution over ``labels`` for each text, scored.

    Each label word is scored as the reply to :func:`zero_shot_prompt` by a backend that scores
    given answers (``score(conversations, choices)``, the hf backend). Three rows: ``raw``
    (the likelihoods renormalised over the labels), ``calibrated`` (contextual calibration:
    each label's mean log-likelihood on ``dev_texts`` subtracted, then the temperature that
    minimises the dev NLL) and ``calibrated_label_prior`` (the same plus the dev labels' log
    frequencies, the Bayes posterior). The calibration sees only the development texts.

    Raises:
        EmoscopeError: the backend cannot score, or no development texts are given.
    """
    from emoscope.llm.scoring import LabelCalibration

    if not can_score(backend):
        raise EmoscopeError(
            "zero-shot label scoring needs a backend that scores given answers (the hf backend)"
        )
    if not dev_texts or len(dev_texts) != len(dev_gold):
        raise EmoscopeError("zero-shot label scoring needs development texts with gold labels")
    y = np.asarray(gold, dtype=np.int64)
    dev_scores = _label_scores(backend, dev_texts, labels, batch_size)
    scores = _label_scores(backend, texts, labels, batch_size)
    dev_names = [labels[int(i)] for i in dev_gold]
    cals: dict[str, LabelCalibration] = {
        "raw": LabelCalibration(tuple(labels)),
        "calibrated": LabelCalibration.fit(labels, dev_scores, dev_names),
        "calibrated_label_prior": LabelCalibration.fit(
            labels, dev_scores, dev_names, label_prior=True
        ),
    }
    rows = {
        name: {**_scored_row(cal.probabilities(scores), y, labels, n_boot, seed),
               "calibration": cal.to_dict()}
        for name, cal in cals.items()
    }  # fmt: skip
    return {
        "mode": "label scoring (log-likelihood of each label word as the reply)",
        "n": len(texts),
        "n_dev": len(dev_texts),
        "model": getattr(backend, "model", None),
        "prompt": zero_shot_prompt("{text}", labels),
        **rows,
        "examples": [
            {"text": t, "label_logprobs": dict(zip(labels, r.round(3).tolist(), strict=True))}
            for t, r in list(zip(texts, scores, strict=True))[:5]
        ],
    }
