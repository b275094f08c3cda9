"""The emotion of the supporter's reply, and the words behind the seeker's emotion.

**Target emotion (rule).** "Automatically Select Emotion for Response via Personality-affected
Emotion Transition" (Wen et al., Findings of ACL 2021) chooses a response's emotion in VAD
space: the responder's emotion moves from the preceding emotion by a transition that the
responder's personality shapes. emoscope's rule fixes the personality to that of a good
supporter (agreeable, emotionally stable): the reply's VAD moves a fraction
``pull`` (0.6) of the way from the seeker's VAD towards the VAD of *caring* (warm, calm and
level) — a sad seeker gets a gentler, less negative reply, not a cheerful one — and its label
is the nearest, by Euclidean distance in VAD, of :data:`PALETTE`, the GoEmotions labels a
supporter may show (the hostile and self-directed ones, and neutral, left out).

**Target emotion (learned).** :class:`EmotionTransition` fits the same move from data: a
ridge regression from the seeker's VAD to the VAD emoscope reads in the human supporter's
reply (ESConv dev). ``benchmarks/support_esconv.py`` measures both on ESConv test.

**Cause words.** HEF (Yang et al., "Enhancing Empathetic Response Generation by Augmenting
LLMs with Small-scale Empathetic Models") gives the LLM the words that cause the emotion.
Until the recognisers report them (``EmotionPrediction.cues``), :func:`cause_words` finds them
by occlusion: each word is removed in turn and the drop of the top label's probability ranks
the words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscope._io import write_json
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.prediction import EmotionPrediction

__all__ = [
    "ANCHOR",
    "PALETTE",
    "EmotionTransition",
    "TargetEmotion",
    "cause_words",
    "nearest_label",
    "target_emotion",
]

PALETTE = (
    "caring",
    "sadness",
    "optimism",
    "approval",
    "admiration",
    "curiosity",
    "relief",
    "realization",
    "gratitude",
    "love",
    "joy",
    "surprise",
)
ANCHOR = "caring"
PULL = 0.6
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "i",
        "im",
        "i'm",
        "me",
        "my",
        "you",
        "your",
        "it",
        "its",
        "is",
        "am",
        "are",
        "was",
        "were",
        "be",
        "been",
        "this",
        "that",
        "just",
        "really",
        "very",
        "do",
        "did",
        "not",
        "have",
        "has",
        "had",
    ]
)

VAD = tuple[float, float, float]


@dataclass(frozen=True)
class TargetEmotion:
    """The emotion chosen for the reply: a label of :data:`PALETTE` and its VAD point."""

    label: str
    vad: VAD
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"label": self.label, "vad": list(self.vad), "rule": self.rule}


def nearest_label(vad: Sequence[float], palette: Sequence[str] = PALETTE) -> str:
    """The label of ``palette`` (GoEmotions labels) nearest to ``vad``."""
    tax = get_taxonomy("goemotions")
    points = np.stack([tax.vad_of(lab) for lab in palette])
    dist = ((points - np.asarray(vad, dtype=float)) ** 2).sum(1)
    return palette[int(dist.argmin())]


def _clip(v: np.ndarray) -> VAD:
    a, b, c = (float(x) for x in np.clip(v, -1.0, 1.0))
    return (a, b, c)


def target_emotion(
    seeker: EmotionPrediction | Sequence[float],
    transition: EmotionTransition | None = None,
    *,
    pull: float = PULL,
) -> TargetEmotion:
    """The reply's target emotion from the seeker's emotion (its VAD).

    With ``transition`` the learned move is used, else the rule of the module docstring.
    """
    vad = seeker.vad if isinstance(seeker, EmotionPrediction) else seeker
    if vad is None:
        raise EmoscopeError("the seeker's emotion has no VAD; use a recogniser with a VAD head")
    s = np.asarray(vad, dtype=float)
    if transition is not None:
        point = _clip(transition.predict(s[None])[0])
        return TargetEmotion(nearest_label(point), point, "learned")
    anchor = np.asarray(get_taxonomy("goemotions").vad_of(ANCHOR))
    point = _clip(s + pull * (anchor - s))
    return TargetEmotion(nearest_label(point), point, "rule")


class EmotionTransition:
    """Ridge regression from the seeker's VAD to the reply's VAD (fit on ESConv dev)."""

    def __init__(self, l2: float = 1.0) -> None:
        self.l2 = l2
        self.coef_: np.ndarray | None = None

    def fit(self, seeker_vad: Any, reply_vad: Any) -> EmotionTransition:
        """Fit on ``(n, 3)`` seeker and reply VAD arrays."""
        x = np.asarray(seeker_vad, dtype=float)
        y = np.asarray(reply_vad, dtype=float)
        if x.ndim != 2 or x.shape[1] != 3 or y.shape != x.shape:
            raise EmoscopeError(f"expected two (n, 3) VAD arrays, got {x.shape} and {y.shape}")
        xb = np.hstack([x, np.ones((len(x), 1))])
        reg = self.l2 * np.eye(4)
        reg[3, 3] = 0.0
        self.coef_ = np.linalg.solve(xb.T @ xb + reg, xb.T @ y)
        return self

    def predict(self, seeker_vad: Any) -> np.ndarray:
        """The reply VAD for each seeker VAD row."""
        if self.coef_ is None:
            raise EmoscopeError("the transition is not fitted")
        x = np.asarray(seeker_vad, dtype=float)
        out: np.ndarray = np.hstack([x, np.ones((len(x), 1))]) @ self.coef_
        return out

    def save(self, path: str | Path) -> Path:
        """Write the coefficients as JSON."""
        if self.coef_ is None:
            raise EmoscopeError("the transition is not fitted")
        write_json(path, {"kind": "emotion-transition", "l2": self.l2, "coef": self.coef_.tolist()})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EmotionTransition:
        """Read what :meth:`save` wrote."""
        try:
            d = json.loads(Path(path).read_text("utf-8"))
            coef = np.asarray(d["coef"], dtype=float)
        except (OSError, ValueError, KeyError) as e:
            raise EmoscopeError(f"{path}: not an emotion-transition file ({e})") from None
        if d.get("kind") != "emotion-transition" or coef.shape != (4, 3):
            raise EmoscopeError(f"{path}: not an emotion-transition file")
        t = cls(float(d.get("l2", 1.0)))
        t.coef_ = coef
        return t


def cause_words(
    recognizer: Any, text: str, prediction: EmotionPrediction | None = None, k: int = 3
) -> list[str]:
    """Up to ``k`` words of ``text`` that carry its emotion, most important first.

    Uses ``prediction.cues["cause_words"]`` when a recogniser reported them; otherwise
    occlusion with ``recognizer`` (one batch: the text without each content word).
    """
    if prediction is not None and isinstance(prediction.cues.get("cause_words"), list):
        return [str(w) for w in prediction.cues["cause_words"]][:k]
    spans = [m for m in _WORD.finditer(text) if m.group().lower() not in _STOP]
    if not spans or k < 1:
        return []
    # A text that is one word becomes empty without it; it reads as "." (as in explain).
    variants = [text[: m.start()] + text[m.end() :] for m in spans]
    variants = [v if v.strip() else "." for v in variants]
    preds = recognizer.predict([text, *variants])
    base = preds[0]
    label = base.label
    drops = [base.probs[label] - p.probs[label] for p in preds[1:]]
    order = sorted(range(len(spans)), key=lambda i: -drops[i])
    words: list[str] = []
    for i in order:
        w = spans[i].group()
        if drops[i] <= 0 or len(words) >= k:
            break
        if w.lower() not in (x.lower() for x in words):
            words.append(w)
    return words
