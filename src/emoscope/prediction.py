"""The result type of every recogniser: :class:`EmotionPrediction`.

VAD scale: valence, arousal and dominance are each in ``[-1, 1]`` with 0 the neutral midpoint
(the bipolar scale of Russell & Mehrabian, 1977). Datasets on other scales are converted on read:
EmoBank's 1–5 SAM ratings map by ``(x - 3) / 2``, NRC VAD's 0–1 scores by ``2x - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PREDICTION_SCHEMA", "EmotionPrediction"]

VAD = tuple[float, float, float]


@dataclass(frozen=True)
class EmotionPrediction:
    """A probability per label of a named taxonomy, plus optional VAD, confidence and rationale.

    Args:
        probs: probability per label; for single-label taxonomies they sum to 1, for multi-label
            heads each value is an independent probability of that label being present.
        taxonomy: the name of the taxonomy the labels come from (see :mod:`emoscope.labels`).
        labels: the labels predicted present, best first. Defaults to ``[top label]``.
        vad: ``(valence, arousal, dominance)`` each in ``[-1, 1]``, or ``None``.
        confidence: the calibrated probability that the top label is right; defaults to the top
            label's probability.
        rationale: free-text reasoning (LLM recognisers).
        cues: extra evidence, e.g. explicit/implicit emotion cues or matched lexicon words;
            word attributions are under ``cues["attributions"]`` (see
            :func:`emoscope.explain.cue_words`).
        multi_label: whether ``probs`` are independent per-label probabilities.
        language: ISO 639-1 code of the text's language as detected (``None``: not detected,
            or no letters); see :mod:`emoscope.language`.
        warnings: why this prediction may be unreliable, each ``"key: explanation"`` (keys:
            ``not-english``, ``no-letters``, ``context-truncated``).
    """

    probs: Mapping[str, float]
    taxonomy: str
    labels: tuple[str, ...] = ()
    vad: VAD | None = None
    confidence: float = float("nan")
    rationale: str | None = None
    cues: Mapping[str, Any] = field(default_factory=dict)
    multi_label: bool = False
    language: str | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.probs:
            raise ValueError("an EmotionPrediction needs at least one label probability")
        probs = {str(k): float(v) for k, v in self.probs.items()}
        for k, v in probs.items():
            if not (0.0 <= v <= 1.0) or math.isnan(v):
                raise ValueError(f"probability of {k!r} is {v}, expected a value in [0, 1]")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))
        top = max(probs, key=probs.__getitem__)
        if not self.labels:
            object.__setattr__(self, "labels", (top,))
        else:
            unknown = [lab for lab in self.labels if lab not in probs]
            if unknown:
                raise ValueError(f"predicted labels {unknown} are not in probs")
            object.__setattr__(self, "labels", tuple(self.labels))
        if math.isnan(self.confidence):
            object.__setattr__(self, "confidence", probs[top])
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence is {self.confidence}, expected a value in [0, 1]")
        if self.vad is not None:
            object.__setattr__(self, "vad", tuple(float(x) for x in self.vad))
            if len(self.vad) != 3:
                raise ValueError(f"vad must be (valence, arousal, dominance), got {self.vad}")
            if not all(-1.0 <= x <= 1.0 for x in self.vad):
                raise ValueError(f"vad values must be in [-1, 1], got {self.vad}")

    @property
    def label(self) -> str:
        """The top label (highest probability)."""
        return max(self.probs, key=self.probs.__getitem__)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable labels with their probabilities."""
        return sorted(self.probs.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict following :data:`PREDICTION_SCHEMA`."""
        d: dict[str, Any] = {
            "taxonomy": self.taxonomy,
            "label": self.label,
            "labels": list(self.labels),
            "probs": dict(self.probs),
            "confidence": self.confidence,
            "multi_label": self.multi_label,
            "vad": None if self.vad is None else list(self.vad),
        }
        if self.rationale is not None:
            d["rationale"] = self.rationale
        if self.cues:
            d["cues"] = dict(self.cues)
        if self.language is not None:
            d["language"] = self.language
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmotionPrediction:
        """Read back what :meth:`to_dict` wrote."""
        vad = d.get("vad")
        return cls(
            probs=dict(d["probs"]),
            taxonomy=str(d["taxonomy"]),
            labels=tuple(d.get("labels") or ()),
            vad=None if vad is None else (float(vad[0]), float(vad[1]), float(vad[2])),
            confidence=float(d.get("confidence", float("nan"))),
            rationale=d.get("rationale"),
            cues=dict(d.get("cues") or {}),
            multi_label=bool(d.get("multi_label", False)),
            language=d.get("language"),
            warnings=tuple(d.get("warnings") or ()),
        )

    @classmethod
    def from_scores(
        cls,
        names: Sequence[str],
        probs: Sequence[float],
        taxonomy: str,
        **kwargs: Any,
    ) -> EmotionPrediction:
        """Build a prediction from parallel label-name/probability sequences.

        Other keyword arguments (``labels``, ``vad``, ``confidence``...) go to the constructor.
        """
        if len(names) != len(probs):
            raise ValueError(f"{len(names)} label names but {len(probs)} probabilities")
        return cls(
            probs=dict(zip(names, (float(p) for p in probs), strict=True)),
            taxonomy=taxonomy,
            **kwargs,
        )


PREDICTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/emoscope/emoscope/docs/prediction.schema.json",
    "title": "EmotionPrediction",
    "type": "object",
    "required": ["taxonomy", "label", "labels", "probs", "confidence", "vad"],
    "properties": {
        "taxonomy": {"type": "string", "description": "name of the label taxonomy"},
        "label": {"type": "string", "description": "the most probable label"},
        "labels": {
            "type": "array",
            "items": {"type": "string"},
            "description": "labels predicted present, best first",
        },
        "probs": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
            "description": "probability per label",
        },
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "multi_label": {"type": "boolean"},
        "vad": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "array",
                    "items": {"type": "number", "minimum": -1, "maximum": 1},
                    "minItems": 3,
                    "maxItems": 3,
                    "description": "valence, arousal, dominance, each in [-1, 1]",
                },
            ]
        },
        "rationale": {"type": "string"},
        "cues": {
            "type": "object",
            "description": "extra evidence; 'attributions' holds word attributions "
            "[{word, weight, start, end}] when an explanation was asked for",
        },
        "language": {
            "type": "string",
            "description": "ISO 639-1 code of the detected language of the text",
        },
        "warnings": {
            "type": "array",
            "items": {"type": "string"},
            "description": "why the prediction may be unreliable, each 'key: explanation' "
            "(not-english, no-letters, context-truncated)",
        },
    },
    "additionalProperties": False,
}
