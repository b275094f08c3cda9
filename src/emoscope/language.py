"""What a recogniser can read: the language of a text, and warnings about its input.

emoscope's default model and lexicon are trained on English only. :func:`detect` names the
language of a text (ISO 639-1 code) with ``py3langid`` (Lui & Baldwin, 2012, "langid.py: An
Off-the-shelf Language Identification Tool"; the numpy port) and :func:`input_warnings` turns
what it found into the warnings an :class:`~emoscope.prediction.EmotionPrediction` carries.

langid.py is unreliable on very short Latin-script texts ("Okay." comes out as Tagalog with
probability 0.07), so the rule is: a text with no letters has no language; a text written mostly
in another script than Latin is in the language langid names; a Latin-script text is English
unless langid names another language with normalised probability at least
:data:`MIN_CONFIDENCE` *and* gives English less than :data:`MAX_ENGLISH` ("ok see you" is
Nigerian Pidgin at 0.52 but English at 0.21). Measured in ``benchmarks/results/language_id.json``.

Every warning starts with a stable key and a colon (``not-english:``, ``no-letters:``,
``context-truncated:``) so programs can match on it.
"""

from __future__ import annotations

import functools
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ENGLISH", "MIN_CONFIDENCE", "Detection", "detect", "input_warnings"]

MIN_CONFIDENCE = 0.5
"""A Latin-script text is called non-English only when langid is at least this sure..."""

MAX_ENGLISH = 0.05
"""... and gives English less than this probability."""

MODEL_LANGUAGES = ("en",)
"""The languages the default model was trained on."""


@dataclass(frozen=True)
class Detection:
    """The language of one text: ISO 639-1 ``language`` (``None``: no letters, or no detector)
    and langid's normalised probability of it (``None`` when the rule decided alone)."""

    language: str | None
    confidence: float | None = None
    letters: int = 0


@functools.cache
def _identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        warnings.warn(
            "py3langid is not installed, so no language is detected and non-English texts are "
            "not flagged; install it with: pip install 'emoscope[model]'",
            stacklevel=3,
        )
        return None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _letters(text: str) -> tuple[int, int]:
    """(letters, Latin-script letters) of ``text``."""
    total = latin = 0
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            total += 1
            if ch.isascii() or "LATIN" in unicodedata.name(ch, ""):
                latin += 1
    return total, latin


def detect(text: str) -> Detection:
    """The language of ``text`` (see the module docstring for the rule)."""
    total, latin = _letters(text)
    if total == 0:
        return Detection(None)
    ident = _identifier()
    if ident is None:
        return Detection(None, letters=total)
    ranked = {str(code): float(p) for code, p in ident.rank(text)}
    code = max(ranked, key=ranked.__getitem__)
    prob = ranked[code]
    unsure = prob < MIN_CONFIDENCE or ranked.get("en", 0.0) >= MAX_ENGLISH
    if latin * 2 > total and code != "en" and unsure:
        return Detection("en", None, total)
    return Detection(code, round(prob, 4), total)


def input_warnings(text: str, detection: Detection | None = None) -> list[str]:
    """Warnings about reading ``text`` with an English-only model (empty when none apply)."""
    d = detection or detect(text)
    if d.letters == 0:
        return [
            "no-letters: the text has no letters (emoji, digits or punctuation only); the "
            "model reads words, so this prediction says little"
        ]
    if d.language is not None and d.language not in MODEL_LANGUAGES:
        return [
            f"not-english: the text looks like {d.language!r} (ISO 639-1), but the model is "
            "trained on English only; the prediction is unreliable"
        ]
    return []
