"""Emotion taxonomies, their VAD coordinates, and mappings between them.

Taxonomies: ``goemotions`` (27 emotions + neutral; Demszky et al., 2020), ``ekman`` (6 basic
emotions + neutral; Ekman, 1992), ``meld`` (the Ekman set as used by MELD; Poria et al., 2019),
``emorynlp`` (Willcox's feeling wheel as used by EmoryNLP; Zahiri & Choi, 2018) and ``plutchik``
(8 primary emotions; Plutchik, 1980).

Each label has valence/arousal/dominance coordinates on emoscope's ``[-1, 1]`` scale; the values
and their sources live in ``data/label_vad.json`` (NRC VAD Lexicon, Mohammad 2018, rescaled by
``2x - 1``).

Mappings between taxonomies: where an official grouping exists it is used (GoEmotions → Ekman,
from the GoEmotions release; MELD and Ekman share their seven labels). Official groupings chain
(GoEmotions → Ekman → MELD). Otherwise each source label goes to the target label nearest in VAD
space, neutral going to neutral (or spread uniformly when the target has no neutral label). This
automatic mapping has known oddities where labels differ mainly in dominance (EmoryNLP "mad" is
nearer MELD "fear" than "anger"), reported with the method name ``vad-nearest`` wherever used. A
mapping is a row-stochastic matrix, so mapping a distribution returns a distribution.

A VAD point becomes a mixture over a taxonomy's labels by placing an isotropic Gaussian at each
label's coordinates and normalising the densities, as in "Revisiting Emotions Representation for
Recognition in the Wild" (categorical labels as Gaussians in VAD space).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from emoscope.prediction import EmotionPrediction

__all__ = [
    "TAXONOMIES",
    "Taxonomy",
    "get_taxonomy",
    "map_distribution",
    "map_label",
    "map_prediction",
    "mapping_matrix",
]

VAD = tuple[float, float, float]

GOEMOTIONS_LABELS = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)

# The official grouping shipped with GoEmotions (data/ekman_mapping.json of the release).
GOEMOTIONS_TO_EKMAN: dict[str, str] = {
    **dict.fromkeys(["anger", "annoyance", "disapproval"], "anger"),
    "disgust": "disgust",
    **dict.fromkeys(["fear", "nervousness"], "fear"),
    **dict.fromkeys(
        [
            "joy",
            "amusement",
            "approval",
            "excitement",
            "gratitude",
            "love",
            "optimism",
            "relief",
            "pride",
            "admiration",
            "desire",
            "caring",
        ],
        "joy",
    ),
    **dict.fromkeys(["sadness", "disappointment", "embarrassment", "grief", "remorse"], "sadness"),
    **dict.fromkeys(["surprise", "realization", "confusion", "curiosity"], "surprise"),
    "neutral": "neutral",
}


@functools.cache
def _vad_table() -> dict[str, Any]:
    text = resources.files("emoscope").joinpath("data/label_vad.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


@dataclass(frozen=True)
class Taxonomy:
    """A named, ordered set of emotion labels with VAD coordinates.

    Attributes:
        name: short name used throughout emoscope (``"meld"``, ``"goemotions"`` ...).
        labels: label names in canonical (lowercase) form and fixed order.
        multi_label: whether a text may carry several labels at once (GoEmotions).
        neutral: the name of the neutral label, if the taxonomy has one.
        citation: where the taxonomy comes from.
        aliases: other spellings accepted by :meth:`normalize` (e.g. dataset capitalisation).
    """

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False
    neutral: str | None = "neutral"
    citation: str = ""
    aliases: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and self._lookup().get(label.strip().lower()) is not None

    def _lookup(self) -> dict[str, str]:
        table = {lab.lower(): lab for lab in self.labels}
        table.update({a.lower(): lab for a, lab in self.aliases})
        return table

    def normalize(self, label: str) -> str:
        """The canonical form of ``label`` (case-insensitive, aliases accepted).

        Raises:
            ValueError: if the label is not in this taxonomy.
        """
        found = self._lookup().get(label.strip().lower())
        if found is None:
            raise ValueError(
                f"unknown {self.name} label {label!r}; expected one of: {', '.join(self.labels)}"
            )
        return found

    def index(self, label: str) -> int:
        """Position of ``label`` in :attr:`labels`."""
        return self.labels.index(self.normalize(label))

    @property
    def vad(self) -> np.ndarray:
        """Array of shape ``(len(labels), 3)``: each label's (valence, arousal, dominance)."""
        return _label_vad_matrix(self.labels)

    def vad_of(self, label: str) -> VAD:
        """The VAD coordinates of one label."""
        v, a, d = (float(x) for x in self.vad[self.index(label)])
        return (v, a, d)

    def expected_vad(self, probs: Mapping[str, float] | Sequence[float]) -> VAD:
        """Probability-weighted mean of the labels' VAD coordinates."""
        p = self._as_vector(probs)
        total = p.sum()
        if total <= 0:
            raise ValueError("probabilities sum to zero")
        v, a, d = (float(x) for x in (p / total) @ self.vad)
        return (v, a, d)

    def mixture(
        self, vad: Sequence[float], sigma: float = 0.3, dims: Iterable[int] = (0, 1, 2)
    ) -> dict[str, float]:
        """Turn a VAD point into a distribution over this taxonomy's labels.

        Each label is an isotropic Gaussian with standard deviation ``sigma`` centred on its VAD
        coordinates; the densities at ``vad`` are normalised to sum to 1. ``dims`` restricts the
        distance to some dimensions (e.g. ``(0,)`` for a valence-only signal).
        """
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        idx = list(dims)
        point = np.asarray(vad, dtype=float)[idx]
        sq = ((self.vad[:, idx] - point) ** 2).sum(axis=1)
        logits = -sq / (2 * sigma**2)
        w = np.exp(logits - logits.max())
        w /= w.sum()
        return dict(zip(self.labels, (float(x) for x in w), strict=True))

    def _as_vector(self, probs: Mapping[str, float] | Sequence[float]) -> np.ndarray:
        if isinstance(probs, Mapping):
            p = np.zeros(len(self.labels))
            for k, v in probs.items():
                p[self.index(k)] += float(v)
            return p
        p = np.asarray(probs, dtype=float)
        if p.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} probabilities, got shape {p.shape}")
        return p


@functools.cache
def _label_vad_matrix(labels: tuple[str, ...]) -> np.ndarray:
    table = _vad_table()["labels"]
    missing = [lab for lab in labels if lab not in table]
    if missing:
        raise KeyError(f"no VAD coordinates for labels {missing} in data/label_vad.json")
    m = np.array([table[lab]["vad"] for lab in labels], dtype=float)
    m.setflags(write=False)
    return m


TAXONOMIES: dict[str, Taxonomy] = {
    t.name: t
    for t in [
        Taxonomy(
            "goemotions",
            GOEMOTIONS_LABELS,
            multi_label=True,
            citation="Demszky et al. (2020). GoEmotions: A Dataset of Fine-Grained Emotions. ACL.",
        ),
        Taxonomy(
            "ekman",
            ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"),
            citation="Ekman, P. (1992). An argument for basic emotions. Cognition & Emotion.",
        ),
        Taxonomy(
            "meld",
            ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"),
            citation="Poria et al. (2019). MELD: A Multimodal Multi-Party Dataset for Emotion "
            "Recognition in Conversations. ACL.",
        ),
        Taxonomy(
            "emorynlp",
            ("neutral", "joyful", "peaceful", "powerful", "scared", "mad", "sad"),
            citation="Zahiri & Choi (2018). Emotion Detection on TV Show Transcripts with "
            "Sequence-based Convolutional Neural Networks. AAAI Workshops. Labels from "
            "Willcox (1982), The Feeling Wheel.",
        ),
        Taxonomy(
            "plutchik",
            ("joy", "trust", "fear", "surprise", "sadness", "disgust", "anger", "anticipation"),
            neutral=None,
            citation="Plutchik, R. (1980). Emotion: A Psychoevolutionary Synthesis.",
        ),
    ]
}

# Official groupings between taxonomies: source -> target -> {source label: target label}.
_OFFICIAL: dict[tuple[str, str], dict[str, str]] = {
    ("goemotions", "ekman"): GOEMOTIONS_TO_EKMAN,
    ("ekman", "meld"): {lab: lab for lab in TAXONOMIES["ekman"].labels},
    ("meld", "ekman"): {lab: lab for lab in TAXONOMIES["meld"].labels},
}


def get_taxonomy(name: str | Taxonomy) -> Taxonomy:
    """Look a taxonomy up by name (case-insensitive); a :class:`Taxonomy` is returned as is."""
    if isinstance(name, Taxonomy):
        return name
    try:
        return TAXONOMIES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown taxonomy {name!r}; expected one of: {', '.join(TAXONOMIES)}"
        ) from None


def _official_matrix(src: Taxonomy, tgt: Taxonomy) -> np.ndarray:
    table = _OFFICIAL[(src.name, tgt.name)]
    m = np.zeros((len(src), len(tgt)))
    for s, t in table.items():
        m[src.index(s), tgt.index(t)] = 1.0
    return m


def _official_path(src: str, tgt: str) -> list[str] | None:
    """Shortest chain of official groupings from ``src`` to ``tgt`` (breadth-first)."""
    prev: dict[str, str | None] = {src: None}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        if node == tgt:
            path = [node]
            while (p := prev[path[-1]]) is not None:
                path.append(p)
            return path[::-1]
        for a, b in _OFFICIAL:
            if a == node and b not in prev:
                prev[b] = node
                queue.append(b)
    return None


def _vad_nearest_matrix(src: Taxonomy, tgt: Taxonomy) -> np.ndarray:
    m = np.zeros((len(src), len(tgt)))
    dist = ((src.vad[:, None, :] - tgt.vad[None, :, :]) ** 2).sum(axis=2)
    for i, lab in enumerate(src.labels):
        if lab == src.neutral:
            if tgt.neutral is not None:
                m[i, tgt.index(tgt.neutral)] = 1.0
            else:
                m[i, :] = 1.0 / len(tgt)
            continue
        candidates = [j for j, t in enumerate(tgt.labels) if t != tgt.neutral]
        j = min(candidates, key=lambda c: dist[i, c])
        m[i, j] = 1.0
    return m


@functools.cache
def _mapping_matrix(src_name: str, tgt_name: str) -> tuple[np.ndarray, str]:
    src, tgt = get_taxonomy(src_name), get_taxonomy(tgt_name)
    if src.name == tgt.name:
        return np.eye(len(src)), "identity"
    path = _official_path(src.name, tgt.name)
    if path is not None:
        m = np.eye(len(src))
        for a, b in itertools.pairwise(path):
            m = m @ _official_matrix(get_taxonomy(a), get_taxonomy(b))
        return m, "official:" + "->".join(path)
    return _vad_nearest_matrix(src, tgt), "vad-nearest"


def mapping_matrix(src: str | Taxonomy, tgt: str | Taxonomy) -> tuple[np.ndarray, str]:
    """The row-stochastic matrix mapping ``src`` labels to ``tgt`` labels, and how it was made.

    Returns ``(matrix, method)`` where ``matrix[i, j]`` is the share of source label ``i`` that
    goes to target label ``j`` and ``method`` is ``"identity"``, ``"official:a->b..."`` or
    ``"vad-nearest"``.
    """
    m, method = _mapping_matrix(get_taxonomy(src).name, get_taxonomy(tgt).name)
    return m.copy(), method


def map_distribution(
    probs: Mapping[str, float], src: str | Taxonomy, tgt: str | Taxonomy
) -> dict[str, float]:
    """Map a distribution over ``src`` labels to a distribution over ``tgt`` labels."""
    s, t = get_taxonomy(src), get_taxonomy(tgt)
    m, _ = mapping_matrix(s, t)
    out = s._as_vector(probs) @ m
    return dict(zip(t.labels, (float(x) for x in out), strict=True))


def map_vector(pred: EmotionPrediction, tgt: Taxonomy) -> tuple[np.ndarray, tuple[str, ...], str]:
    """The prediction's probabilities and predicted labels in ``tgt``, and the mapping method.

    Single-label distributions map through the row-stochastic mapping matrix, so they stay
    distributions. Independent multi-label probabilities combine by a noisy-OR (a target label is
    present if any source label mapped to it is), which keeps each value in [0, 1].
    """
    src = get_taxonomy(pred.taxonomy)
    m, method = mapping_matrix(src, tgt)
    p = src._as_vector(pred.probs)
    if pred.multi_label:
        q = 1.0 - np.prod(1.0 - p[:, None] * m, axis=0)
        labels = tuple(
            dict.fromkeys(tgt.labels[int(np.argmax(m[src.index(lab)]))] for lab in pred.labels)
        )
    else:
        q = p @ m
        labels = ()
    return np.clip(q, 0.0, 1.0), labels, method


def map_prediction(pred: EmotionPrediction, taxonomy: str | Taxonomy) -> EmotionPrediction:
    """Express ``pred`` in another taxonomy (unchanged when it already uses that taxonomy).

    A single-label distribution maps through :func:`emoscope.labels.mapping_matrix`; a
    multi-label prediction maps its predicted labels one by one and its probabilities by a
    noisy-OR over the source labels grouped into each target label. VAD, rationale and cues are
    kept; the confidence becomes the top mapped probability.
    """
    tgt = get_taxonomy(taxonomy)
    if get_taxonomy(pred.taxonomy).name == tgt.name:
        return pred
    q, labels, _ = map_vector(pred, tgt)
    return EmotionPrediction(
        probs=dict(zip(tgt.labels, (float(x) for x in q), strict=True)),
        taxonomy=tgt.name,
        labels=labels,
        vad=pred.vad,
        rationale=pred.rationale,
        cues=pred.cues,
        multi_label=pred.multi_label,
        language=pred.language,
        warnings=pred.warnings,
    )


def map_label(label: str, src: str | Taxonomy, tgt: str | Taxonomy) -> str:
    """Map one ``src`` label to its ``tgt`` label (the largest share of its mapping row)."""
    s, t = get_taxonomy(src), get_taxonomy(tgt)
    m, _ = mapping_matrix(s, t)
    return t.labels[int(np.argmax(m[s.index(label)]))]
