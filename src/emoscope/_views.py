"""Answering in a requested taxonomy with a recogniser's own head when it has one.

Used by the HTTP service and batch annotation: a request for taxonomy ``T`` is served by a
*view* of an :class:`~emoscope.recognizers.encoder.EncoderRecognizer` that reads its ``T`` head
(sharing the loaded weights), and by :func:`emoscope.evaluate.map_prediction` otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from emoscope.labels import Taxonomy
from emoscope.recognizers.base import Recognizer

__all__ = ["native_view"]


def native_view(rec: Recognizer, taxonomy: Taxonomy) -> Recognizer | None:
    """A recogniser sharing ``rec``'s model that predicts ``taxonomy`` with its own head, or
    ``None`` when ``rec`` has no such head (then predictions must be mapped)."""
    if rec.taxonomy.name == taxonomy.name:
        return rec
    encoder = sys.modules.get("emoscope.recognizers.encoder")
    if encoder is None or not isinstance(rec, encoder.EncoderRecognizer):
        return None
    if not any(h.taxonomy == taxonomy.name for h in rec.config.heads):
        return None
    view: Any = encoder.EncoderRecognizer(
        model=rec.model,
        tokenizer=rec.tokenizer,
        taxonomy=taxonomy.name,
        batch_size=rec.batch_size,
    )
    view.name = rec.name
    return view
