"""The :class:`Recognizer` protocol, the :class:`RecognizerMixin` recognisers share, and the
registry that finds recognisers by name."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from emoscope._imports import import_object
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy
from emoscope.prediction import EmotionPrediction

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_TEXT_CHARS_ENV",
    "Recognizer",
    "RecognizerMixin",
    "Target",
    "available_recognizers",
    "check_text",
    "flatten_inputs",
    "load_recognizer",
    "max_text_chars",
    "register",
    "unicode_problem",
]

Input = str | Dialogue

MAX_TEXT_CHARS = 2000
"""Default longest text (characters) the CLI, the Python API and the service accept."""
MAX_TEXT_CHARS_ENV = "EMOSCOPE_MAX_TEXT_CHARS"


def max_text_chars() -> int:
    """The per-text limit in force: ``$EMOSCOPE_MAX_TEXT_CHARS`` if set, else 2000."""
    raw = os.environ.get(MAX_TEXT_CHARS_ENV, "").strip()
    if not raw:
        return MAX_TEXT_CHARS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise EmoscopeError(f"{MAX_TEXT_CHARS_ENV}={raw!r}: expected a whole number of at least 1")
    return value


def check_text(text: str, where: str, limit: int) -> None:
    """Refuse an empty text, one over ``limit`` characters, or one that is not valid Unicode;
    ``where`` names it in the error (``"text 3"``)."""
    if not text.strip():
        raise EmoscopeError(f"{where} is empty; expected some text")
    if len(text) > limit:
        raise EmoscopeError(
            f"{where} has {len(text):,} characters; the limit is {limit:,} characters per text "
            f"(set {MAX_TEXT_CHARS_ENV} to change it)"
        )
    problem = unicode_problem(text)
    if problem:
        raise EmoscopeError(f"{where} {problem} (undecodable input?); expected valid Unicode text")


def unicode_problem(text: str) -> str | None:
    """What makes ``text`` impossible to encode as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"contains an unpaired surrogate U+{ord(text[e.start]):04X} at character {e.start}"
    return None


@runtime_checkable
class Recognizer(Protocol):
    """What every emotion recogniser offers.

    ``predict`` takes a batch of inputs. A string yields one prediction; a :class:`Dialogue`
    yields one prediction per utterance (each read in its preceding context), in order. The
    result is the flat list of all of them.
    """

    name: str

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy of the labels in this recogniser's predictions."""
        ...

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this recogniser predicts, in the order of its taxonomy."""
        ...

    def predict(self, inputs: Sequence[Input]) -> list[EmotionPrediction]:
        """Predict emotions for a batch of texts and/or dialogues."""
        ...


class Target:
    """One utterance to predict: its text, and where available its dialogue and position."""

    __slots__ = ("dialogue", "index", "utterance")

    def __init__(self, utterance: Utterance, dialogue: Dialogue | None = None, index: int = 0):
        self.utterance = utterance
        self.dialogue = dialogue
        self.index = index

    @property
    def text(self) -> str:
        """The utterance text."""
        return self.utterance.text

    def context(self, window: int | None = None) -> list[Utterance]:
        """Preceding utterances (none for a standalone text)."""
        return [] if self.dialogue is None else self.dialogue.context(self.index, window)


def flatten_inputs(inputs: Sequence[Input], *, check: bool = True) -> list[Target]:
    """Expand texts and dialogues into the list of utterances to predict, in output order.

    With ``check`` (what ``predict`` uses), an empty text, a dialogue without utterances (it
    would silently give no prediction), a text over :func:`max_text_chars` characters or one
    that is not valid Unicode raise :class:`~emoscope.errors.EmoscopeError` naming the input.
    """
    if isinstance(inputs, str | Dialogue):
        raise TypeError("predict() takes a sequence of texts or dialogues, not a single one")
    limit = max_text_chars() if check else 0
    targets: list[Target] = []
    for n, x in enumerate(inputs):
        start = len(targets)
        if isinstance(x, str):
            targets.append(Target(Utterance(x)))
        elif isinstance(x, Utterance):
            targets.append(Target(x))
        elif isinstance(x, Dialogue):
            if check and not x.utterances:
                raise EmoscopeError(
                    f"input {n} is a dialogue without utterances; it would give no prediction"
                )
            targets.extend(Target(u, x, i) for i, u in enumerate(x.utterances))
        else:
            raise TypeError(f"expected str, Utterance or Dialogue, got {type(x).__name__}")
        if check:
            for t in targets[start:]:
                where = f"input {n}" if t.dialogue is None else f"input {n}, utterance {t.index}"
                check_text(t.text, where, limit)
    return targets


class RecognizerMixin:
    """The part every emoscope recogniser shares; subclass it to write a new one.

    A subclass sets ``name`` and ``self._taxonomy`` (a :class:`~emoscope.labels.Taxonomy`) and
    gets :attr:`taxonomy` and :attr:`labels`. A recogniser that reads each text on its own
    implements ``_predict_text(text) -> EmotionPrediction`` and inherits :meth:`predict`, which
    checks and expands the inputs (:func:`flatten_inputs`) and calls it once per text and per
    dialogue utterance; one that reads context or batches overrides :meth:`predict`.

    **Persistence.** A recogniser that can be written to disk offers ``save(path) -> Path`` (the
    file or folder written, atomically) and the classmethod ``load(path, **options)`` taking the
    constructor's options, such that ``type(rec).load(rec.save(p))`` predicts as ``rec`` does.

    **Training.** New trainable components follow scikit-learn, as the probes of
    :mod:`emoscope.probe` do: hyper-parameters go to ``__init__``, ``fit(X, y)`` learns in place
    and returns ``self``, then ``predict``/``predict_proba`` (and ``save``/``load`` as above); see
    ``docs/recognizers.md``. Two older shapes
    remain for compatibility: :meth:`LexiconRecognizer.fit
    <emoscope.recognizers.lexicon.LexiconRecognizer.fit>` is a classmethod returning a new
    recogniser, and :func:`emoscope.training.train` writes a model folder that
    :class:`~emoscope.recognizers.encoder.EncoderRecognizer` loads (fine-tuning runs for hours
    and checkpoints to that folder, so it is a function of a config, not a method).
    """

    name: str
    _taxonomy: Taxonomy

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy of the labels in this recogniser's predictions."""
        return self._taxonomy

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this recogniser predicts, in the order of its taxonomy."""
        return self._taxonomy.labels

    def _predict_text(self, text: str) -> EmotionPrediction:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _predict_text(text) or override predict()"
        )

    def predict(self, inputs: Sequence[Input]) -> list[EmotionPrediction]:
        """Predict each text and each utterance of a dialogue on its own, in input order."""
        return [self._predict_text(t.text) for t in flatten_inputs(inputs)]


_REGISTRY: dict[str, Callable[..., Recognizer]] = {}


def register(name: str) -> Callable[[Callable[..., Recognizer]], Callable[..., Recognizer]]:
    """Class/function decorator registering a recogniser factory under a short name."""

    def deco(factory: Callable[..., Recognizer]) -> Callable[..., Recognizer]:
        _REGISTRY[name] = factory
        return factory

    return deco


# Built-ins are imported lazily so that e.g. the lexicon works without torch installed.
_BUILTIN_MODULES = {
    "lexicon": "emoscope.recognizers.lexicon",
    "nrclex": "emoscope.recognizers.peers",
    "vader": "emoscope.recognizers.peers",
    "default": "emoscope.recognizers.encoder",
    "encoder": "emoscope.recognizers.encoder",
    "llm": "emoscope.recognizers.llm",
}


def available_recognizers() -> list[str]:
    """Short names of the built-in and registered recognisers."""
    return sorted(set(_BUILTIN_MODULES) | set(_REGISTRY))


def load_recognizer(name: str, **kwargs: Any) -> Recognizer:
    """Build a recogniser from a short name (``lexicon``, ``default`` ...) or a dotted path.

    A dotted path (``package.module:Class`` or ``package.module.Class``) names a class or
    factory that is called with ``kwargs`` and must return an object following
    :class:`Recognizer`.
    """
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ImportError as e:
            raise EmoscopeError(
                f"recogniser {name!r} needs an optional dependency that is missing: {e}"
            ) from e
    if name in _REGISTRY:
        factory: Callable[..., Any] = _REGISTRY[name]
    elif "." in name or ":" in name:
        factory = import_object(name, "recogniser")
    else:
        raise EmoscopeError(
            f"unknown recogniser {name!r}; expected one of: {', '.join(available_recognizers())} "
            "or a dotted path 'package.module:Class'"
        )
    rec = factory(**kwargs)
    if not isinstance(rec, Recognizer):
        raise EmoscopeError(
            f"{name!r} did not produce a Recognizer (needs predict/labels/taxonomy)"
        )
    return rec
