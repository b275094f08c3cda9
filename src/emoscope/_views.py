"""One routing of a requested taxonomy to a recogniser that answers in it.

Every front-end (the CLI's ``analyze``/``dialogue``/``eval``, the HTTP service, batch annotation
and :func:`emoscope.load`) asks :func:`route` for the recogniser to call, so they all answer a
request for taxonomy ``T`` the same way:

- an :class:`~emoscope.recognizers.encoder.EncoderRecognizer` gets a *view* in ``T`` sharing the
  loaded weights, whose head choice per input (``T``'s own head, else the head trained on that
  kind of input, mapped) is :func:`emoscope.recognizers.encoder.route_head`;
- any other recogniser's predictions are mapped by :func:`emoscope.labels.map_prediction`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from emoscope.labels import Taxonomy, map_prediction
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Input, Recognizer, RecognizerMixin

__all__ = ["MappedRecognizer", "native_view", "route"]


def native_view(rec: Recognizer, taxonomy: Taxonomy) -> Recognizer | None:
    """A recogniser sharing ``rec``'s encoder model that answers in ``taxonomy`` with its own
    head routing, or ``None`` when ``rec`` is not an encoder (then predictions must be mapped)."""
    if rec.taxonomy.name == taxonomy.name:
        return rec
    encoder = sys.modules.get("emoscope.recognizers.encoder")
    if encoder is None or not isinstance(rec, encoder.EncoderRecognizer):
        return None
    view: Any = encoder.EncoderRecognizer(
        model=rec.model,
        tokenizer=rec.tokenizer,
        taxonomy=taxonomy.name,
        batch_size=rec.batch_size,
        neutral_prior=rec.neutral_prior,
    )
    view.name = rec.name
    return view


class MappedRecognizer(RecognizerMixin):
    """``recognizer`` with every prediction mapped into ``taxonomy``."""

    def __init__(self, recognizer: Recognizer, taxonomy: Taxonomy) -> None:
        self.recognizer = recognizer
        self.name = recognizer.name
        self._taxonomy = taxonomy

    def predict(self, inputs: Sequence[Input]) -> list[EmotionPrediction]:
        """The wrapped recogniser's predictions, mapped."""
        return [map_prediction(p, self._taxonomy) for p in self.recognizer.predict(inputs)]


def route(rec: Recognizer, taxonomy: Taxonomy | None) -> Recognizer:
    """The recogniser whose predictions answer a request for ``taxonomy`` (``None``: ``rec``'s
    own taxonomy)."""
    if taxonomy is None:
        return rec
    view = native_view(rec, taxonomy)
    return view if view is not None else MappedRecognizer(rec, taxonomy)
