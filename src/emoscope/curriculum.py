"""Curriculum learning for conversation emotion recognition: dialogue difficulty, bucket schedule.

Implements the curriculum of PRC-Emo (Li, Xu, Qiao & Liu, "Do LLMs Feel? Teaching Emotion
Recognition with Prompts, Retrieval, and Curriculum Learning", AAAI 2026; reference code
LiXinran6/PRC-Emo), which extends the emotion-shift difficulty of hybrid curriculum learning for
ERC (Yang et al., "Hybrid Curriculum Learning for Emotion Recognition in Conversation", AAAI 2022).

**Labels on the valence–arousal circle.** Every label gets an angle θ on the valence–arousal
plane. By default (``circle="vad"``) the angle is ``atan2(arousal, valence)`` of the label's VAD
coordinates in :mod:`emoscope.labels`; ``circle="reference"`` uses the hand-placed circle of the
reference code (labels at odd multiples of π/20: joy at 3π/20, surprise 9π/20, anger 11π/20,
disgust 17π/20, fear 19π/20, sadness 29π/20, ...); a mapping ``{label: (valence, arousal)}``
places the labels explicitly.

**Similarity of two different labels** ``a`` and ``b`` (:func:`emotion_similarity`):

* ``1/N`` when either is the taxonomy's neutral label (or has valence exactly 0), where ``N`` is
  the number of labels of the taxonomy, neutral included (the reference code uses 7 for MELD and
  EmoryNLP, 6 for IEMOCAP: their label counts);
* ``0`` when their valences have opposite signs;
* ``max(cos(θa − θb), 0)`` otherwise.

**Shift score.** Consecutive emotions ``a → b`` with ``a ≠ b`` form a *shift* scoring
``k·s(a, b) + b`` (``k = 1``, ``b = 0.4`` in the reference code). Equal consecutive emotions are no
shift and score 0, as are pairs where either label is unknown (``None``).

**Dialogue difficulty** (:func:`dialogue_difficulty`) of a dialogue with ``n`` utterances and
``p`` distinct speakers::

    (same-speaker shift scores + different-speaker shift scores + p) / (n + p)

* *same-speaker shifts*: for each speaker, the shifts between that speaker's consecutive
  utterances (skipping the other speakers' turns in between);
* *different-speaker shifts*: the shifts between adjacent utterances ``i − 1, i`` spoken by
  different speakers.

This is ``difficulty4``, the value the reference code returns. Ordering strategies
(:data:`STRATEGIES`):

* ``"speaker-weighted"`` (default, PRC-Emo): the formula above, both kinds of shift, each sum
  multiplied by a configurable weight (``same_speaker_weight``, ``cross_speaker_weight``; 1 and 1
  in the paper);
* ``"emotion-shift"``: same-speaker shifts only, ``(same + p) / (n + p)`` (the reference code's
  ``difficulty``, the weighted form of Yang et al.'s emotion-shift measure);
* ``"none"``: no curriculum. Every dialogue gets difficulty 0 and the schedule shows the whole
  training set every epoch (one bucket).

**Schedule** (:class:`BucketSchedule`, :func:`curriculum_epochs`), as in the reference trainer:
training items are sorted by difficulty, easiest first (a stable sort: ties keep their input
order), and cut into ``n_buckets`` buckets of ``⌊n / n_buckets⌋`` items, the last bucket taking
the remainder. Stage ``s`` trains on buckets ``0..s`` for ``epochs_per_stage`` epochs; after the
last stage (which already covers everything) training continues on the full data. With the paper's
2 buckets and 4 epochs: epoch 1 sees the easier half, epochs 2–4 the whole set. Within an epoch the
visible items are shuffled (``shuffle=True``, the reference behaviour) or kept in easy-to-hard
order (``shuffle=False``).

Speakers may be any hashable value; ``None`` counts as one (unknown) speaker. Labels may be label
names of the taxonomy (case-insensitive, aliases accepted) or integer indices into
``taxonomy.labels``; ``None`` marks an unlabelled utterance.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy

if TYPE_CHECKING:
    from emoscope.datasets.base import Dataset

__all__ = [
    "CIRCLES",
    "DEFAULT_B",
    "DEFAULT_K",
    "STRATEGIES",
    "BucketSchedule",
    "CurriculumConfig",
    "curriculum_epochs",
    "dialogue_difficulty",
    "emotion_similarity",
    "example_difficulties",
    "label_angles",
    "shift_score",
    "similarity_matrix",
]

STRATEGIES = ("none", "emotion-shift", "speaker-weighted")
CIRCLES = ("vad", "reference")
DEFAULT_K = 1.0
DEFAULT_B = 0.4

Label = str | int | None
Circle = str | Mapping[str, tuple[float, float]]
RngLike = np.random.Generator | random.Random | int | None

# The reference code's circle: angle = m·π/20 for the label's multiple m (valence = cos, arousal
# = sin). Synonyms share a position, as in the reference (EmoryNLP's "scared" sits at "fear").
_REFERENCE_MULTIPLES: dict[str, int] = {
    "pleasure": 1,
    "happiness": 3,
    "happy": 3,
    "joy": 3,
    "joyful": 3,
    "pride": 5,
    "elation": 5,
    "powerful": 5,
    "excitement": 7,
    "excited": 7,
    "surprise": 9,
    "interest": 9,
    "anger": 11,
    "angry": 11,
    "mad": 11,
    "irritation": 11,
    "hate": 13,
    "contempt": 15,
    "disgust": 17,
    "fear": 19,
    "scared": 19,
    "disappointment": 21,
    "frustration": 21,
    "frustrated": 21,
    "shame": 23,
    "regret": 25,
    "guilt": 27,
    "sadness": 29,
    "sad": 29,
    "compassion": 31,
    "relief": 33,
    "admiration": 35,
    "love": 37,
    "contentment": 39,
    "peaceful": 39,
}


# --------------------------------------------------------------------------------------------
# Label geometry


def _positions(taxonomy: Taxonomy, circle: Circle) -> dict[str, tuple[float, float]]:
    """(valence, arousal) of every non-neutral label of ``taxonomy`` on the chosen circle."""
    labels = [lab for lab in taxonomy.labels if lab != taxonomy.neutral]
    if isinstance(circle, Mapping):
        missing = [lab for lab in labels if lab not in circle]
        if missing:
            raise EmoscopeError(
                f"the circle positions lack labels {missing}; expected (valence, arousal) for "
                f"every non-neutral {taxonomy.name} label"
            )
        return {lab: (float(circle[lab][0]), float(circle[lab][1])) for lab in labels}
    if circle == "vad":
        vad = taxonomy.vad
        return {
            lab: (
                float(vad[taxonomy.labels.index(lab), 0]),
                float(vad[taxonomy.labels.index(lab), 1]),
            )
            for lab in labels
        }
    if circle == "reference":
        missing = [lab for lab in labels if lab not in _REFERENCE_MULTIPLES]
        if missing:
            raise EmoscopeError(
                f"the reference circle has no position for the {taxonomy.name} labels {missing}; "
                "use circle='vad' or give positions explicitly"
            )
        out = {}
        for lab in labels:
            angle = _REFERENCE_MULTIPLES[lab] * math.pi / 20
            out[lab] = (math.cos(angle), math.sin(angle))
        return out
    raise EmoscopeError(
        f"unknown circle {circle!r}; expected one of: {', '.join(CIRCLES)}, or a mapping "
        "{label: (valence, arousal)}"
    )


def _circle_key(circle: Circle) -> Hashable:
    if isinstance(circle, Mapping):
        return tuple(sorted((k, (float(v[0]), float(v[1]))) for k, v in circle.items()))
    return circle


def label_angles(taxonomy: str | Taxonomy, circle: Circle = "vad") -> dict[str, float]:
    """Angle (radians, in ``(-π, π]``) of each non-neutral label on the valence–arousal circle."""
    tax = get_taxonomy(taxonomy)
    return {lab: math.atan2(a, v) for lab, (v, a) in _positions(tax, circle).items()}


def similarity_matrix(taxonomy: str | Taxonomy, circle: Circle = "vad") -> np.ndarray:
    """The ``(N, N)`` label similarity matrix in the order of ``taxonomy.labels``.

    Off-diagonal entries follow the rules of the module docstring; the diagonal is 1 (a label is
    identical to itself), although equal consecutive labels never form a shift.
    """
    tax = get_taxonomy(taxonomy)
    return _similarity_matrix(tax, _circle_key(circle), circle).copy()


_MATRICES: dict[tuple[Taxonomy, Hashable], np.ndarray] = {}


def _similarity_matrix(tax: Taxonomy, key: Hashable, circle: Circle) -> np.ndarray:
    m = _MATRICES.get((tax, key))
    if m is None:
        pos = _positions(tax, circle)
        m = np.eye(len(tax))
        for i, a in enumerate(tax.labels):
            for j, b in enumerate(tax.labels):
                if i != j:
                    m[i, j] = _pair_similarity(a, b, tax, pos)
        m.setflags(write=False)
        _MATRICES[(tax, key)] = m
    return m


def _pair_similarity(
    a: str, b: str, tax: Taxonomy, pos: Mapping[str, tuple[float, float]]
) -> float:
    if a == tax.neutral or b == tax.neutral:
        return 1.0 / len(tax)
    (va, aa), (vb, ab) = pos[a], pos[b]
    if va * vb == 0:
        return 1.0 / len(tax)
    if va * vb < 0:
        return 0.0
    na, nb = math.hypot(va, aa), math.hypot(vb, ab)
    return max((va * vb + aa * ab) / (na * nb), 0.0)


def _index(label: str | int, tax: Taxonomy) -> int:
    if isinstance(label, bool) or not isinstance(label, int | str | np.integer):
        raise EmoscopeError(
            f"label {label!r} is neither a label name nor an index; expected one of: "
            + ", ".join(tax.labels)
        )
    if isinstance(label, int | np.integer):
        if not 0 <= int(label) < len(tax):
            raise EmoscopeError(
                f"label index {label} is out of range; expected 0..{len(tax) - 1} "
                f"for the {tax.name} taxonomy"
            )
        return int(label)
    try:
        return tax.index(label)
    except ValueError as e:
        raise EmoscopeError(str(e)) from None


def emotion_similarity(
    a: str | int, b: str | int, taxonomy: str | Taxonomy, circle: Circle = "vad"
) -> float:
    """Similarity in ``[0, 1]`` of two labels of ``taxonomy`` (1 for the same label)."""
    tax = get_taxonomy(taxonomy)
    m = _similarity_matrix(tax, _circle_key(circle), circle)
    return float(m[_index(a, tax), _index(b, tax)])


def shift_score(
    a: Label,
    b: Label,
    taxonomy: str | Taxonomy,
    *,
    k: float = DEFAULT_K,
    bias: float = DEFAULT_B,
    circle: Circle = "vad",
) -> float:
    """Score of the transition ``a → b``: ``k·s(a, b) + bias`` for a shift, else 0.

    There is no shift (score 0) when ``a`` and ``b`` are the same label or either is ``None``.
    """
    if a is None or b is None:
        return 0.0
    tax = get_taxonomy(taxonomy)
    i, j = _index(a, tax), _index(b, tax)
    if i == j:
        return 0.0
    m = _similarity_matrix(tax, _circle_key(circle), circle)
    return k * float(m[i, j]) + bias


# --------------------------------------------------------------------------------------------
# Dialogue difficulty


def _check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise EmoscopeError(
            f"unknown curriculum strategy {strategy!r}; expected one of: {', '.join(STRATEGIES)}"
        )
    return strategy


def dialogue_difficulty(
    labels: Sequence[Label],
    speakers: Sequence[Hashable],
    taxonomy: str | Taxonomy,
    *,
    strategy: str = "speaker-weighted",
    k: float = DEFAULT_K,
    b: float = DEFAULT_B,
    same_speaker_weight: float = 1.0,
    cross_speaker_weight: float = 1.0,
    circle: Circle = "vad",
) -> float:
    """Difficulty of one dialogue from its gold labels and speakers (see the module docstring).

    Args:
        labels: the gold label of each utterance (name, index into ``taxonomy.labels`` or
            ``None`` when unlabelled).
        speakers: the speaker of each utterance (any hashable; ``None`` is one speaker).
        taxonomy: the taxonomy of the labels (its size is the ``N`` of the neutral rule).
        strategy: ``"speaker-weighted"``, ``"emotion-shift"`` or ``"none"`` (always 0).
        k, b: slope and offset of a shift's score ``k·s + b``.
        same_speaker_weight, cross_speaker_weight: multipliers of the two sums of shift scores
            (``cross_speaker_weight`` is ignored by ``"emotion-shift"``).
        circle: ``"vad"``, ``"reference"`` or explicit ``{label: (valence, arousal)}``.

    Raises:
        EmoscopeError: empty dialogue, ``labels`` and ``speakers`` of different lengths, an
            unknown label or strategy.
    """
    _check_strategy(strategy)
    if len(labels) != len(speakers):
        raise EmoscopeError(
            f"{len(labels)} labels but {len(speakers)} speakers; expected one speaker per label"
        )
    if not labels:
        raise EmoscopeError("an empty dialogue has no difficulty; expected at least one utterance")
    tax = get_taxonomy(taxonomy)
    for lab in labels:
        if lab is not None:
            _index(lab, tax)
    if strategy == "none":
        return 0.0
    sim = _similarity_matrix(tax, _circle_key(circle), circle)  # also validates the circle

    def score(x: Label, y: Label) -> float:
        if x is None or y is None:
            return 0.0
        i, j = _index(x, tax), _index(y, tax)
        return 0.0 if i == j else k * float(sim[i, j]) + b

    by_speaker: dict[Hashable, list[Label]] = {}
    for lab, spk in zip(labels, speakers, strict=True):
        by_speaker.setdefault(spk, []).append(lab)
    same = sum(score(x, y) for seq in by_speaker.values() for x, y in itertools.pairwise(seq))
    n_speakers = len(by_speaker)
    total = same_speaker_weight * same
    if strategy == "speaker-weighted":
        cross = sum(
            score(labels[i - 1], labels[i])
            for i in range(1, len(labels))
            if speakers[i] != speakers[i - 1]
        )
        total += cross_speaker_weight * cross
    return (total + n_speakers) / (len(labels) + n_speakers)


def example_difficulties(dataset: Dataset, config: CurriculumConfig | None = None) -> list[float]:
    """One difficulty per example of ``dataset`` (aligned with ``dataset.examples``).

    An utterance gets the difficulty of its whole dialogue; a standalone text counts as a
    one-utterance dialogue with one speaker, i.e. ``(0 + 1) / (1 + 1) = 0.5`` (0 for ``"none"``).
    Multi-label examples use their first label; unlabelled ones are ``None``.

    Raises:
        EmoscopeError: the dataset has no taxonomy (e.g. EmoBank) but has labels.
    """
    cfg = config or CurriculumConfig()
    tax = dataset.taxonomy
    if tax is None:
        if any(e.labels for e in dataset.examples):
            raise EmoscopeError(
                f"dataset {dataset.name!r} has labels but no taxonomy; expected a labelled "
                "dataset with a taxonomy"
            )
        tax = get_taxonomy("ekman")  # unused: every label is None
    labels_of: dict[int, list[Label]] = {}
    for e in dataset.examples:
        if e.dialogue is not None and e.index is not None:
            seq = labels_of.setdefault(id(e.dialogue), [None] * len(e.dialogue))
            seq[e.index] = e.label
    cache: dict[int, float] = {}
    out: list[float] = []
    for e in dataset.examples:
        d = e.dialogue
        if d is None:
            out.append(cfg.difficulty([e.label], [None], tax))
            continue
        key = id(d)
        if key not in cache:
            labels = labels_of.get(key) or [None] * len(d)
            cache[key] = cfg.difficulty(labels, [u.speaker for u in d.utterances], tax)
        out.append(cache[key])
    return out


# --------------------------------------------------------------------------------------------
# Schedule


def _make_rng(rng: RngLike) -> np.random.Generator | random.Random:
    if isinstance(rng, np.random.Generator | random.Random):
        return rng
    return np.random.default_rng(rng)


def _shuffled(items: list[int], rng: np.random.Generator | random.Random) -> list[int]:
    out = list(items)
    if isinstance(rng, random.Random):
        rng.shuffle(out)
        return out
    return [out[i] for i in rng.permutation(len(out))]


class BucketSchedule:
    """Easy-to-hard bucket schedule over training items with known difficulties.

    Args:
        difficulties: one difficulty per training item (any finite floats).
        n_buckets: number of buckets (clamped to the number of items; 1 means no curriculum).
        epochs_per_stage: epochs spent on each stage before the next bucket is added.

    Attributes:
        order: item indices sorted by difficulty, easiest first (stable).
        buckets: the buckets, each a list of indices in easy-to-hard order.
    """

    def __init__(
        self, difficulties: Sequence[float], n_buckets: int = 2, epochs_per_stage: int = 1
    ) -> None:
        d = np.asarray(difficulties, dtype=float)
        if d.ndim != 1 or d.size == 0:
            raise EmoscopeError("a curriculum needs a non-empty list of difficulties")
        if not np.all(np.isfinite(d)):
            raise EmoscopeError("difficulties must be finite numbers (found NaN or infinity)")
        if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 1:
            raise EmoscopeError(f"n_buckets must be an integer ≥ 1, got {n_buckets!r}")
        if (
            isinstance(epochs_per_stage, bool)
            or not isinstance(epochs_per_stage, int)
            or epochs_per_stage < 1
        ):
            raise EmoscopeError(
                f"epochs_per_stage must be an integer ≥ 1, got {epochs_per_stage!r}"
            )
        self.n_items = int(d.size)
        self.n_buckets = min(n_buckets, self.n_items)
        self.epochs_per_stage = epochs_per_stage
        self.order: list[int] = [int(i) for i in np.argsort(d, kind="stable")]
        size = self.n_items // self.n_buckets
        self.buckets: list[list[int]] = [
            self.order[i * size : (i + 1) * size if i < self.n_buckets - 1 else self.n_items]
            for i in range(self.n_buckets)
        ]

    def stage(self, epoch: int) -> int:
        """The 0-based stage of 0-based ``epoch`` (``n_buckets`` and above: full data)."""
        if epoch < 0:
            raise EmoscopeError(f"epoch must be ≥ 0, got {epoch}")
        return min(epoch // self.epochs_per_stage, self.n_buckets)

    def visible(self, epoch: int) -> list[int]:
        """The items of ``epoch`` (0-based) in easy-to-hard order."""
        s = self.stage(epoch)
        if s >= self.n_buckets - 1:
            return list(self.order)
        return [i for b in self.buckets[: s + 1] for i in b]

    def epoch_indices(self, epoch: int, rng: RngLike = None, shuffle: bool = True) -> list[int]:
        """The items of ``epoch``, shuffled with ``rng`` or in easy-to-hard order."""
        items = self.visible(epoch)
        return _shuffled(items, _make_rng(rng)) if shuffle else items

    def phases(self, n_epochs: int) -> list[tuple[list[int], int]]:
        """Consecutive ``(items in easy-to-hard order, number of epochs)`` covering ``n_epochs``.

        Meant for trainers that run one training phase per stage (as the reference LoRA trainer
        does); adjacent epochs with the same items are merged.
        """
        out: list[tuple[list[int], int]] = []
        last = None
        for e in range(_check_epochs(n_epochs)):
            s = min(self.stage(e), self.n_buckets - 1)
            if s == last:
                items, count = out[-1]
                out[-1] = (items, count + 1)
            else:
                out.append((self.visible(e), 1))
                last = s
        return out

    def epochs(self, n_epochs: int, rng: RngLike = None, shuffle: bool = True) -> list[list[int]]:
        """Item indices for each of ``n_epochs`` epochs."""
        gen = _make_rng(rng)
        return [self.epoch_indices(e, gen, shuffle) for e in range(_check_epochs(n_epochs))]


def _check_epochs(n_epochs: int) -> int:
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 0:
        raise EmoscopeError(f"n_epochs must be an integer ≥ 0, got {n_epochs!r}")
    return n_epochs


def curriculum_epochs(
    difficulties: Sequence[float],
    n_epochs: int,
    n_buckets: int = 2,
    rng: RngLike = None,
    *,
    shuffle: bool = True,
    epochs_per_stage: int = 1,
) -> list[list[int]]:
    """Training item indices for each epoch of an easy-to-hard bucket curriculum.

    Items are sorted by difficulty (stable, easiest first) and cut into ``n_buckets`` buckets;
    epoch ``e`` (0-based) trains on buckets ``0..e // epochs_per_stage``, and on everything once
    all buckets are in. Each epoch's items are shuffled with ``rng`` (a ``numpy`` Generator, a
    ``random.Random``, a seed, or ``None`` for fresh entropy) unless ``shuffle=False``, which
    keeps them in easy-to-hard order. ``n_buckets=1`` gives plain shuffled training.

    Example (2 buckets, 4 epochs, difficulties ``[0.9, 0.1, 0.5, 0.3]``): epoch 1 sees items
    ``{1, 3}``, epochs 2–4 all four items.
    """
    return BucketSchedule(difficulties, n_buckets, epochs_per_stage).epochs(n_epochs, rng, shuffle)


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class CurriculumConfig:
    """All settings of the curriculum, with the paper's values as defaults.

    ``strategy="none"`` turns the curriculum off: every difficulty is 0 and
    :meth:`schedule` uses a single bucket (shuffled full data each epoch).
    """

    strategy: str = "speaker-weighted"
    k: float = DEFAULT_K
    b: float = DEFAULT_B
    same_speaker_weight: float = 1.0
    cross_speaker_weight: float = 1.0
    circle: str = "vad"
    n_buckets: int = 2
    epochs_per_stage: int = 1
    shuffle: bool = True

    def __post_init__(self) -> None:
        _check_strategy(self.strategy)
        if self.circle not in CIRCLES:
            raise EmoscopeError(
                f"unknown circle {self.circle!r}; expected one of: {', '.join(CIRCLES)}"
            )

    def difficulty(
        self, labels: Sequence[Label], speakers: Sequence[Hashable], taxonomy: str | Taxonomy
    ) -> float:
        """:func:`dialogue_difficulty` with this configuration."""
        return dialogue_difficulty(
            labels,
            speakers,
            taxonomy,
            strategy=self.strategy,
            k=self.k,
            b=self.b,
            same_speaker_weight=self.same_speaker_weight,
            cross_speaker_weight=self.cross_speaker_weight,
            circle=self.circle,
        )

    def schedule(self, difficulties: Sequence[float]) -> BucketSchedule:
        """The bucket schedule of this configuration (one bucket when the strategy is none)."""
        n = 1 if self.strategy == "none" else self.n_buckets
        return BucketSchedule(difficulties, n, self.epochs_per_stage)

    def epochs(
        self, difficulties: Sequence[float], n_epochs: int, rng: RngLike = None
    ) -> list[list[int]]:
        """Item indices per epoch under this configuration."""
        return self.schedule(difficulties).epochs(n_epochs, rng, self.shuffle)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for training logs and saved model configs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CurriculumConfig:
        """Rebuild a configuration from :meth:`to_dict` output; unknown keys raise."""
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(d) - known)
        if extra:
            raise EmoscopeError(
                f"unknown curriculum settings {extra}; expected some of: {', '.join(sorted(known))}"
            )
        return cls(**dict(d))
