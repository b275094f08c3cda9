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
import lzma
import os
import shutil
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
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
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier
    except ImportError:
        warnings.warn(
            "py3langid is not installed, so no language is detected and non-English texts are "
            "not flagged; install it with: pip install 'emoscope[model]'",
            stacklevel=3,
        )
        return None
    # py3langid ships its model LZMA-compressed and decompresses it on every load (0.7 s of a
    # cold `emoscope analyze`); keep the decompressed arrays once in emoscope's cache instead.
    try:
        arrays = _cached_model(MODEL_DIR / MODEL_FILE)
    except OSError:
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return LanguageIdentifier(*arrays[:5], norm_probs=True, tk_row=arrays[5])


def _cached_model(source: Path) -> tuple[Any, ...]:
    """langid's model arrays, from an uncompressed copy of ``source`` in emoscope's cache.

    The copy is named after the source's size and mtime, so an upgraded py3langid writes a new
    one; it is written to a temporary name and renamed, so a crash never leaves a partial file.
    """
    import numpy as np
    from py3langid.modelio import _to_array

    from emoscope.models import cache_dir

    stat = source.stat()
    target = cache_dir("langid", f"model-{stat.st_size}-{int(stat.st_mtime)}.npz")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with lzma.open(source) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        os.replace(tmp, target)
    with np.load(target, allow_pickle=False) as data:
        return (
            np.asarray(data["ptc"]),
            np.asarray(data["pc"]),
            data["classes"].tolist(),
            _to_array(data["nextmove"]),
            data["out_feat"].tolist(),
            _to_array(data["nextmove_row"]),
        )


def _letters(text: str) -> tuple[int, int]:
    """(letters, Latin-script letters) of ``text``."""
    if text.isascii():  # the common case, without a Python loop over unicodedata
        total = sum(1 for ch in text if ch.isalpha())
        return total, total
    total = latin = 0
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            total += 1
            if ch.isascii() or "LATIN" in unicodedata.name(ch, ""):
                latin += 1
    return total, latin


def _best_and_english(ident: Any, text: str) -> tuple[str, float, float]:
    """langid's best language, its probability and the probability of English.

    The same numbers as ``ident.rank(text)`` (whose first column of an aliased label holds the
    merged score), read from one score vector instead of a sorted 142-entry list: that list
    was a third of the language check's cost per text.
    """
    scores = ident._decide(text)
    best = int(scores.argmax())
    english = _english_column()
    return (
        str(ident.nb_classes[best]),
        float(scores[best]),
        float(scores[english]) if english is not None else 0.0,
    )


@functools.cache
def _english_column() -> int | None:
    """English's column in the (one, cached) identifier's scores, found once."""
    classes = list(_identifier().nb_classes)
    return classes.index("en") if "en" in classes else None


def detect(text: str) -> Detection:
    """The language of ``text`` (see the module docstring for the rule)."""
    total, latin = _letters(text)
    if total == 0:
        return Detection(None)
    ident = _identifier()
    if ident is None:
        return Detection(None, letters=total)
    code, prob, english = _best_and_english(ident, text)
    unsure = prob < MIN_CONFIDENCE or english >= MAX_ENGLISH
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
