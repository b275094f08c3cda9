"""Emotion directions in the residual stream, and steering generation along them.

Directions, one unit vector per emotion and layer, from labelled activations
(:mod:`emoscope.activations`):

* ``diffmean``: difference of means with scenario-grouped centring, as in "Do LLMs 'Feel'?
  Emotion Circuits Discovery and Control" (Wang et al., 2025, arXiv:2510.11328). The mean over
  all emotions of each scenario group is subtracted from that group's vectors (cancelling what
  the scenarios share), emotion centroids are taken, their global mean is removed and each is
  scaled to unit length. Without groups, the global mean is subtracted instead.
* ``pca``: PCA of contrast pairs, as in "Representation Engineering: A Top-Down Approach to AI
  Transparency" (Zou et al., 2023, arXiv:2310.01405): differences of (emotion, other) pairs
  with random order, whose first principal component, oriented towards the emotion, is the
  direction. With scenario groups, pairs are formed within a scenario.

Directions come from the model's own states on elicitation prompts: emoscope's scenarios
(:func:`build_directions`), the SEV scenarios of Wang et al. (2025) under their system prompt
"Always reply in {emotion}. Keep the reply to at most two sentences." with centring within
each (scenario, valence) group (:func:`build_sev_directions`), or the texts of a labelled
dataset (:func:`directions_from_dataset`). :func:`direction_cosines` compares two sets.

Directions are saved as safetensors (``directions`` ``(emotions, layers, hidden)`` and
``layers``) with JSON metadata.

Steering adds ``alpha * v * RMS(h)`` to the output ``h`` of the chosen blocks at the chosen
token positions, ``RMS(h)`` being the root mean square of each token's hidden vector, so that
``alpha`` is relative to the stream's own scale. :class:`steering` is a context manager whose
hooks are removed on exit, also when an exception is raised. Steering plans compose: several
emotions (with their own ``alpha``) are summed into one vector per layer, and nested contexts
add up.

Evaluation (:func:`evaluate_steering`): emotion-expression accuracy (success rate) of steered
continuations as judged by an emoscope recogniser, and fluency: the perplexity of the
continuation under the unsteered model and repetition statistics
(:func:`emoscope.metrics.repetition_report`). Perplexity misses loops (a looping reply is
very predictable), and recognisers label broken text anyway, so degenerate replies
(:func:`emoscope.metrics.is_degenerate`) count as failures before any judge sees them
(:func:`judge_replies`).

Layer ``l`` is the hidden-state layer ``l`` of :mod:`emoscope.activations` (output of the
``l``-th block, 1-based); steering at layer 0 (the embeddings) is not supported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError

if TYPE_CHECKING:
    from emoscope.activations import Activations, LoadedModel
    from emoscope.datasets.base import Dataset

__all__ = [
    "DIRECTION_METHODS",
    "EKMAN_EMOTIONS",
    "POSITIONS",
    "SCENARIOS",
    "SEV_EMOTIONS",
    "SEV_SYSTEM_PROMPT",
    "EmotionDirections",
    "SteeringSpec",
    "build_directions",
    "build_sev_directions",
    "compute_directions",
    "continuation_perplexity",
    "diff_of_means",
    "direction_cosines",
    "directions_from_dataset",
    "elicitation_prompts",
    "evaluate_steering",
    "generate",
    "judge_replies",
    "pca_contrast",
    "read_sev",
    "sev_prompts",
    "steering",
]

DIRECTION_METHODS = ("diffmean", "pca")
POSITIONS = ("all", "prompt", "last", "generated", "last+generated")
EKMAN_EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
#: The six emotions of Wang et al. (2025), as named in their prompts, and their Ekman label.
SEV_EMOTIONS = {
    "anger": "anger",
    "sadness": "sadness",
    "happiness": "joy",
    "fear": "fear",
    "surprise": "surprise",
    "disgust": "disgust",
}
SEV_SYSTEM_PROMPT = "Always reply in {emotion}. Keep the reply to at most two sentences."
SEV_VALENCES = ("positive", "neutral", "negative")

# Neutral everyday scenarios (emoscope's own) used to elicit each emotion in the same context.
SCENARIOS = (
    "Your train arrives at the station ten minutes later than the timetable says.",
    "A parcel you ordered last week is left at your door this afternoon.",
    "Your manager moves the weekly meeting from Monday to Thursday.",
    "A neighbour starts repainting the fence between your gardens.",
    "Your phone shows a message from a number you do not recognise.",
    "The shop on the corner changes its opening hours.",
    "An old friend from school mentions your name in a group chat.",
    "Your landlord says an inspection will take place next month.",
    "The results of last week's test are posted on the notice board.",
    "A colleague takes over the project you were working on.",
    "Your flight is assigned a different gate shortly before boarding.",
    "A stranger on the bus sits down in the seat next to you.",
    "The doctor's office calls to talk about your recent check-up.",
    "Your sister tells you she is moving to another city.",
    "The restaurant brings a dish that is different from what you ordered.",
    "Your team's match on Saturday ends after extra time.",
)


# --------------------------------------------------------------------------------------------
# Direction maths


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if norm == 0 or not math.isfinite(norm):
        raise EmoscopeError("a direction has zero length; the classes cannot be told apart")
    out: np.ndarray = (v / norm).astype(np.float32)
    return out


def diff_of_means(
    x: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    *,
    emotions: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Unit emotion directions of one layer by (group-centred) difference of means.

    Args:
        x: activations ``(n, hidden)``.
        labels: the emotion of each row.
        groups: the scenario of each row; each group's mean (over all its rows, whatever their
            emotion) is subtracted from its rows. ``None``: subtract the global mean.
        emotions: which emotions to return (default: all labels, sorted).
    """
    x = np.asarray(x, dtype=np.float64)
    labels = list(labels)
    if len(labels) != len(x):
        raise EmoscopeError(f"{len(x)} activation rows but {len(labels)} labels")
    centred = x.copy()
    if groups is None:
        centred -= x.mean(0)
    else:
        groups = list(groups)
        if len(groups) != len(x):
            raise EmoscopeError(f"{len(x)} activation rows but {len(groups)} group ids")
        for g in set(groups):
            rows = [i for i, gg in enumerate(groups) if gg == g]
            centred[rows] -= x[rows].mean(0)
    names = sorted(set(labels)) if emotions is None else list(emotions)
    lab = np.asarray(labels)
    missing = [e for e in names if not (lab == e).any()]
    if missing:
        raise EmoscopeError(f"no examples of {missing}; labels present: {sorted(set(labels))}")
    centroids = np.stack([centred[lab == e].mean(0) for e in sorted(set(labels))])
    all_names = sorted(set(labels))
    centroids -= centroids.mean(0)
    return {e: _unit(centroids[all_names.index(e)]) for e in names}


def pca_contrast(
    x: np.ndarray,
    labels: Sequence[str],
    emotion: str,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    negatives: Sequence[str] | None = None,
    groups: Sequence[Hashable] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Unit direction of ``emotion`` in one layer from PCA of contrast-pair differences.

    Args:
        x: activations ``(n, hidden)``.
        labels: the emotion of each row.
        emotion: the positive class.
        pairs: explicit ``(positive row, negative row)`` pairs; by default positives and
            negatives (rows of ``negatives``, or of every other label) are shuffled and paired.
        negatives: labels that count as the contrast class.
        groups: the scenario of each row; pairs are then formed only within a scenario (every
            positive row with every contrast row of its group), so that the differences cancel
            the scenario content, as RepE's contrast pairs share their stimulus.
        seed: for the pairing and the random order within pairs.

    The order within each pair is randomised (each difference is multiplied by a random
    sign) before PCA, as RepE does, so that the first component captures the axis that
    separates the pair members rather than the mean difference; the component is then
    oriented so that the positive rows project higher.
    """
    x = np.asarray(x, dtype=np.float64)
    lab = np.asarray(list(labels))
    rng = np.random.default_rng(seed)
    if pairs is None:
        pos_mask = lab == emotion
        neg_mask = ~pos_mask if negatives is None else np.isin(lab, list(negatives))
        pos, neg = np.flatnonzero(pos_mask), np.flatnonzero(neg_mask)
        if len(pos) == 0 or len(neg) == 0:
            raise EmoscopeError(
                f"need examples of {emotion!r} and of a contrast class; got {len(pos)} and "
                f"{len(neg)}"
            )
        if groups is not None:
            grp = np.asarray(list(groups), dtype=object)
            if len(grp) != len(x):
                raise EmoscopeError(f"{len(x)} activation rows but {len(grp)} group ids")
            within = [
                (int(p), int(q))
                for g in dict.fromkeys(grp.tolist())
                for p in np.flatnonzero(pos_mask & (grp == g))
                for q in np.flatnonzero(neg_mask & (grp == g))
            ]
            if not within:
                raise EmoscopeError(
                    f"no scenario group has both {emotion!r} and a contrast example"
                )
            pair_arr = np.asarray(within, dtype=np.int64)
        else:
            m = max(len(pos), len(neg))
            p_idx = rng.permutation(np.resize(pos, m))
            n_idx = rng.permutation(np.resize(neg, m))
            pair_arr = np.stack([p_idx, n_idx], 1)
    else:
        pair_arr = np.asarray(pairs, dtype=np.int64)
        if pair_arr.ndim != 2 or pair_arr.shape[1] != 2 or len(pair_arr) == 0:
            raise EmoscopeError("pairs must be a non-empty list of (positive, negative) indices")
    diffs = x[pair_arr[:, 0]] - x[pair_arr[:, 1]]
    signs = rng.choice([-1.0, 1.0], size=len(diffs))
    shuffled = diffs * signs[:, None]
    shuffled -= shuffled.mean(0)
    if len(shuffled) < 2:
        v = diffs[0]
    else:
        _, _, vt = np.linalg.svd(shuffled, full_matrices=False)
        v = vt[0]
    if float((diffs @ v).mean()) < 0:
        v = -v
    return _unit(v)


@dataclass
class EmotionDirections:
    """Unit emotion directions per layer.

    Attributes:
        emotions: emotion names, the first axis of ``vectors``.
        layers: hidden-state layers, the second axis of ``vectors``.
        vectors: float32 array ``(len(emotions), len(layers), hidden)`` of unit vectors.
        method: ``diffmean`` or ``pca``.
        model: the model they were computed from.
        meta: other facts (taxonomy, pooling, number of examples ...), JSON-serialisable.
    """

    emotions: tuple[str, ...]
    layers: tuple[int, ...]
    vectors: np.ndarray
    method: str
    model: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def vector(self, emotion: str, layer: int) -> np.ndarray:
        """The unit direction of ``emotion`` at ``layer``."""
        if emotion not in self.emotions:
            raise EmoscopeError(
                f"no direction for emotion {emotion!r}; expected one of: {', '.join(self.emotions)}"
            )
        if layer not in self.layers:
            raise EmoscopeError(
                f"no direction at layer {layer}; available: {', '.join(map(str, self.layers))}"
            )
        out: np.ndarray = self.vectors[self.emotions.index(emotion), self.layers.index(layer)]
        return out

    def plan(
        self, weights: Mapping[str, float], layers: Sequence[int] | None = None
    ) -> list[SteeringSpec]:
        """A steering plan: per layer, the sum of ``alpha * direction`` over ``weights``.

        ``weights`` maps emotions to their ``alpha`` (e.g. ``{"joy": 8, "surprise": 3}``).
        """
        if not weights:
            raise EmoscopeError("no emotions to steer towards")
        chosen = list(self.layers if layers is None else layers)
        specs = []
        for lay in chosen:
            total = sum(float(a) * self.vector(e, lay) for e, a in weights.items())
            specs.append(SteeringSpec(lay, np.asarray(total, dtype=np.float32), 1.0))
        return specs

    def row_plan(
        self, emotions: Sequence[str], alpha: float, layers: Sequence[int] | None = None
    ) -> list[SteeringSpec]:
        """A plan steering prompt ``i`` towards ``emotions[i]`` with ``alpha`` (batched).

        Each layer's vector is ``(len(emotions), hidden)``; :func:`generate` slices it per batch.
        """
        if not emotions:
            raise EmoscopeError("no emotions to steer towards")
        chosen = list(self.layers if layers is None else layers)
        return [
            SteeringSpec(lay, np.stack([float(alpha) * self.vector(e, lay) for e in emotions]), 1.0)
            for lay in chosen
        ]

    def save(self, path: str | Path) -> Path:
        """Write a safetensors file (atomically) with the vectors and JSON metadata."""
        from safetensors.numpy import save

        from emoscope._io import atomic_open

        meta = {
            "format": "emoscope-directions-1",
            "emotions": json.dumps(list(self.emotions)),
            "method": self.method,
            "model": self.model or "",
            "meta": json.dumps(self.meta),
        }
        blob = save(
            {
                "directions": np.ascontiguousarray(self.vectors, dtype=np.float32),
                "layers": np.asarray(self.layers, dtype=np.int64),
            },
            metadata=meta,
        )
        out = Path(path)
        with atomic_open(out, "wb", encoding=None) as fh:
            fh.write(blob)
        return out

    @classmethod
    def load(cls, path: str | Path) -> EmotionDirections:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        p = Path(path)
        if not p.is_file():
            raise EmoscopeError(f"{p}: no such directions file")
        try:
            with safe_open(str(p), framework="numpy") as fh:
                meta = fh.metadata() or {}
                vectors = fh.get_tensor("directions")
                layers = fh.get_tensor("layers")
        except Exception as e:  # safetensors raises its own error types
            raise EmoscopeError(f"{p}: not a directions file written by emoscope ({e})") from e
        if meta.get("format") != "emoscope-directions-1":
            raise EmoscopeError(f"{p}: not a directions file written by emoscope")
        return cls(
            tuple(json.loads(meta["emotions"])),
            tuple(int(x) for x in layers),
            np.asarray(vectors, dtype=np.float32),
            meta.get("method", ""),
            meta.get("model") or None,
            json.loads(meta.get("meta", "{}")),
        )


def compute_directions(
    acts: Activations,
    labels: Sequence[str],
    *,
    method: str = "diffmean",
    groups: Sequence[Hashable] | None = None,
    emotions: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    seed: int = 0,
) -> EmotionDirections:
    """Directions of every emotion at every layer of ``acts`` (see the module docstring)."""
    if method not in DIRECTION_METHODS:
        raise EmoscopeError(
            f"unknown method {method!r}; expected one of: {', '.join(DIRECTION_METHODS)}"
        )
    names = sorted(set(labels)) if emotions is None else list(emotions)
    chosen = list(acts.layers if layers is None else layers)
    out = np.zeros((len(names), len(chosen), acts.hidden_size), dtype=np.float32)
    for li, lay in enumerate(chosen):
        x = np.asarray(acts.layer(lay), dtype=np.float32)
        if method == "diffmean":
            vecs = diff_of_means(x, labels, groups, emotions=names)
            for ei, e in enumerate(names):
                out[ei, li] = vecs[e]
        else:
            for ei, e in enumerate(names):
                out[ei, li] = pca_contrast(x, labels, e, pairs=pairs, groups=groups, seed=seed)
    meta = {"n": len(labels), "pooling": acts.pooling, "grouped": groups is not None}
    return EmotionDirections(tuple(names), tuple(chosen), out, method, acts.model, meta)


def elicitation_prompts(
    emotions: Sequence[str] = EKMAN_EMOTIONS, scenarios: Sequence[str] = SCENARIOS
) -> tuple[list[str], list[str], list[int]]:
    """User messages asking for a reaction with each emotion to each scenario.

    Returns ``(messages, emotion labels, scenario ids)``, every scenario once per emotion, so
    that scenario-grouped centring cancels the scenario content.
    """
    texts, labels, groups = [], [], []
    for g, scenario in enumerate(scenarios):
        for e in emotions:
            texts.append(
                f"Situation: {scenario}\nReact to this situation in one or two sentences, "
                f"feeling strong {e}."
            )
            labels.append(e)
            groups.append(g)
    return texts, labels, groups


def _directions_from_conversations(
    lm: LoadedModel,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    labels: Sequence[str],
    groups: Sequence[Hashable] | None,
    *,
    emotions: Sequence[str] | None,
    method: str,
    layers: str | Sequence[int] | None,
    chat: bool,
    batch_size: int,
    seed: int,
    max_length: int = 512,
) -> EmotionDirections:
    """Directions from the last-prompt-token states of ``conversations`` (one per label)."""
    from emoscope.activations import extract_activations, parse_layers, render_chat

    if chat:
        texts = [render_chat(lm.tokenizer, list(conv)) for conv in conversations]
    else:
        texts = ["\n\n".join(m["content"] for m in conv) for conv in conversations]
    chosen = parse_layers(layers, lm.n_layers, allow_embeddings=False)
    acts = extract_activations(
        lm, texts, layers=chosen, pooling="last", batch_size=batch_size, max_length=max_length,
        add_special_tokens=not (chat and getattr(lm.tokenizer, "chat_template", None)),
    )  # fmt: skip
    return compute_directions(
        acts, labels, method=method, groups=groups,
        emotions=None if emotions is None else list(emotions), seed=seed,
    )  # fmt: skip


def build_directions(
    lm: LoadedModel,
    *,
    emotions: Sequence[str] = EKMAN_EMOTIONS,
    scenarios: Sequence[str] = SCENARIOS,
    method: str = "diffmean",
    layers: str | Sequence[int] | None = "all",
    chat: bool = True,
    batch_size: int = 16,
    seed: int = 0,
) -> EmotionDirections:
    """Directions from the model's own last-prompt-token states under emotion elicitation.

    Each scenario is presented once per emotion (:func:`elicitation_prompts`), rendered as a
    chat turn when ``chat`` (see :func:`emoscope.activations.render_chat`); the state of the
    last prompt token, where the model is about to answer, is read at every layer.
    """
    texts, labels, groups = elicitation_prompts(emotions, scenarios)
    convs = [[{"role": "user", "content": t}] for t in texts]
    dirs = _directions_from_conversations(
        lm, convs, labels, groups, emotions=emotions, method=method, layers=layers, chat=chat,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    dirs.meta.update({"source": "elicitation", "n_scenarios": len(scenarios), "chat": chat})
    return dirs


def read_sev(path: str | Path) -> list[dict[str, Any]]:
    """Scenarios of the SEV set (``sev.jsonl`` / ``test_set.jsonl`` of Wang et al., 2025).

    Each line is a JSON object with ``scenario`` (text), ``event`` (an object with
    ``positive``, ``neutral`` and ``negative`` texts) and optionally ``theme`` and
    ``skeleton_id``.

    Raises:
        EmoscopeError: a missing file, or a line that is not such an object (naming the line).
    """
    p = Path(path)
    if not p.is_file():
        raise EmoscopeError(f"{p}: no such SEV file")
    from emoscope.datasets._common import BadRows, iter_jsonl

    out = []
    expected = "a JSON object with 'scenario' and 'event' {positive, neutral, negative}"
    for no, rec in iter_jsonl(p, BadRows(), expected=expected):
        event = rec.get("event") if isinstance(rec, dict) else None
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("scenario"), str)
            or not isinstance(event, dict)
            or any(not isinstance(event.get(v), str) for v in SEV_VALENCES)
        ):
            raise EmoscopeError(f"{p}, line {no}: expected {expected}")
        out.append(rec)
    if not out:
        raise EmoscopeError(f"{p}: no scenarios")
    return out


def _sev_user(record: Mapping[str, Any], valence: str) -> str:
    scenario = str(record["scenario"]).strip().rstrip(".")
    return f"{scenario}. {record['event'][valence]}"


def sev_prompts(
    records: Sequence[Mapping[str, Any]],
    emotions: Mapping[str, str] = SEV_EMOTIONS,
    *,
    system_prompt: str = SEV_SYSTEM_PROMPT,
    valences: Sequence[str] = SEV_VALENCES,
) -> tuple[list[list[dict[str, str]]], list[str], list[tuple[int, str]]]:
    """Elicitation conversations of the SEV recipe.

    For every scenario and valence the user message is the scenario followed by its event;
    it is asked once per emotion, with ``system_prompt`` naming the emotion (as the paper
    writes it, e.g. "happiness"). Returns ``(conversations, labels, groups)``: labels are the
    mapped names (``emotions`` maps prompt names to labels, e.g. happiness -> joy) and groups
    are ``(scenario index, valence)``, within which the states are centred.
    """
    convs, labels, groups = [], [], []
    for i, rec in enumerate(records):
        for valence in valences:
            user = _sev_user(rec, valence)
            for name, label in emotions.items():
                system = system_prompt.format(emotion=name)
                convs.append(
                    [{"role": "system", "content": system}, {"role": "user", "content": user}]
                )
                labels.append(label)
                groups.append((i, valence))
    return convs, labels, groups


def build_sev_directions(
    lm: LoadedModel,
    records: Sequence[Mapping[str, Any]],
    *,
    emotions: Mapping[str, str] = SEV_EMOTIONS,
    system_prompt: str = SEV_SYSTEM_PROMPT,
    method: str = "diffmean",
    layers: str | Sequence[int] | None = "all",
    batch_size: int = 16,
    seed: int = 0,
) -> EmotionDirections:
    """Directions by the recipe of Wang et al. (2025) on SEV scenarios (:func:`sev_prompts`).

    The last-token residual state of each elicitation prompt is read at every layer and
    centred within its (scenario, valence) group before the emotion means are taken
    (:func:`diff_of_means`).
    """
    convs, labels, groups = sev_prompts(records, emotions, system_prompt=system_prompt)
    dirs = _directions_from_conversations(
        lm, convs, labels, groups, emotions=list(emotions.values()), method=method,
        layers=layers, chat=True, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    dirs.meta.update(
        {"source": "sev", "n_scenarios": len(records), "system_prompt": system_prompt,
         "grouped_by": "scenario, valence", "prompt_emotions": dict(emotions)}
    )  # fmt: skip
    return dirs


def directions_from_dataset(
    lm: LoadedModel,
    dataset: Dataset,
    *,
    emotions: Sequence[str] | None = None,
    max_examples: int | None = 2000,
    method: str = "diffmean",
    layers: str | Sequence[int] | None = "all",
    chat: bool = True,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
) -> EmotionDirections:
    """Directions from the last-token states of a labelled dataset's single-label texts.

    Each text is a user turn (with ``chat``); at most ``max_examples`` texts are drawn in a
    seeded shuffle where the classes take turns (balanced as far as the rare classes allow);
    there are no scenario groups, so the global mean is removed (:func:`diff_of_means`).
    ``emotions`` restricts the classes (default: all that occur, e.g. the Ekman labels with
    ``neutral``).

    Raises:
        EmoscopeError: fewer than two classes with examples, or an asked emotion is missing.
    """
    rows = [(ex.text, ex.labels[0]) for ex in dataset.examples if len(ex.labels) == 1]
    if emotions is not None:
        wanted = set(emotions)
        rows = [r for r in rows if r[1] in wanted]
    present = sorted({lab for _, lab in rows})
    if len(present) < 2:
        raise EmoscopeError(
            f"{dataset.name}: need single-label examples of at least two emotions; found "
            f"{present or 'none'}"
        )
    if max_examples is not None and len(rows) > max_examples:
        # classes take turns in a seeded shuffle, so rare classes keep their examples
        order = np.random.default_rng(seed).permutation(len(rows))
        seen: dict[str, int] = {}
        rank: list[tuple[int, int, int]] = []
        for i in order:
            lab = rows[i][1]
            rank.append((seen.get(lab, 0), len(rank), int(i)))
            seen[lab] = seen.get(lab, 0) + 1
        rows = [rows[i] for _, _, i in sorted(rank)[:max_examples]]
    convs = [[{"role": "user", "content": t}] for t, _ in rows]
    labels = [lab for _, lab in rows]
    dirs = _directions_from_conversations(
        lm, convs, labels, None, emotions=emotions, method=method, layers=layers, chat=chat,
        batch_size=batch_size, seed=seed, max_length=max_length,
    )  # fmt: skip
    counts = {lab: labels.count(lab) for lab in sorted(set(labels))}
    dirs.meta.update(
        {"source": f"dataset:{dataset.name}/{dataset.split}", "label_counts": counts, "chat": chat}
    )
    return dirs


def direction_cosines(a: EmotionDirections, b: EmotionDirections) -> dict[str, dict[int, float]]:
    """Cosine between the directions of ``a`` and ``b`` per shared emotion and layer."""
    emotions = [e for e in a.emotions if e in b.emotions]
    layers = [lay for lay in a.layers if lay in b.layers]
    if not emotions or not layers:
        raise EmoscopeError("the two direction sets share no emotion or no layer")
    out: dict[str, dict[int, float]] = {}
    for e in emotions:
        out[e] = {}
        for lay in layers:
            u, v = a.vector(e, lay), b.vector(e, lay)
            out[e][lay] = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return out


# --------------------------------------------------------------------------------------------
# Steering hooks


@dataclass
class SteeringSpec:
    """Add ``alpha * vector * RMS(h)`` to the output of the block producing ``layer``."""

    layer: int
    vector: np.ndarray
    alpha: float = 1.0


class steering:
    """Context manager that steers a model with forward hooks and always removes them.

    Args:
        lm: a :class:`~emoscope.activations.LoadedModel` (or a bare model with ``n_layers``).
        plan: what to add where (:meth:`EmotionDirections.plan` or your own
            :class:`SteeringSpec` list).
        positions: ``all`` (every token of every forward pass), ``prompt`` (every token of the
            first forward pass in the context, i.e. the prompt of a cached generation),
            ``last`` (only the last token of the first pass: the end of the prompt, which with
            left padding is the last position), ``generated`` (only the passes after the
            first: new tokens), ``last+generated`` (the last position of every pass: the end
            of the prompt, then each new token, as Wang et al. (2025) steer), or a list of
            positions of the first pass (negative counts from the end).

    ``with steering(lm, plan): model.generate(...)``. Each entry into the context starts a new
    "first forward pass"; :func:`generate` enters it once per batch.
    """

    def __init__(
        self,
        lm: Any,
        plan: Sequence[SteeringSpec],
        *,
        positions: str | Sequence[int] = "all",
        n_layers: int | None = None,
    ) -> None:
        if isinstance(positions, str) and positions not in POSITIONS:
            raise EmoscopeError(
                f"unknown positions {positions!r}; expected one of: {', '.join(POSITIONS)} "
                "or a list of token positions"
            )
        self.model = getattr(lm, "model", lm)
        self.n_layers = n_layers if n_layers is not None else getattr(lm, "n_layers", None)
        self.plan = list(plan)
        self.positions = positions if isinstance(positions, str) else [int(p) for p in positions]
        self.handles: list[Any] = []
        self.calls: dict[int, int] = {}
        for spec in self.plan:
            if spec.layer < 1 or (self.n_layers is not None and spec.layer > self.n_layers):
                raise EmoscopeError(
                    f"cannot steer at layer {spec.layer}; expected a block output layer between "
                    f"1 and {self.n_layers}"
                )

    def _mask(self, seq_len: int, call: int) -> list[int] | None:
        """Token positions to steer in this pass (``None`` = all), or [] for none."""
        pos = self.positions
        if pos == "all":
            return None
        if pos == "generated":
            return None if call > 0 else []
        if pos == "last+generated":
            return None if call > 0 else [seq_len - 1]
        if call > 0:
            return []
        if pos == "prompt":
            return None
        if pos == "last":
            return [seq_len - 1]
        assert isinstance(pos, list)
        return [p if p >= 0 else seq_len + p for p in pos if -seq_len <= p < seq_len]

    def _hook(self, key: int, vector: np.ndarray) -> Callable[..., Any]:
        import torch

        vec_cpu = torch.from_numpy(np.asarray(vector, dtype=np.float32))
        if vec_cpu.ndim == 2:  # one vector per batch row
            vec_cpu = vec_cpu[:, None, :]

        def hook(_mod: Any, _args: Any, output: Any) -> Any:
            h = output[0] if isinstance(output, tuple) else output
            call = self.calls.get(key, 0)
            self.calls[key] = call + 1
            keep = self._mask(h.shape[1], call)
            if vec_cpu.ndim == 3 and vec_cpu.shape[0] != h.shape[0]:
                raise EmoscopeError(
                    f"a per-row steering vector has {vec_cpu.shape[0]} rows for a batch of "
                    f"{h.shape[0]}"
                )
            if keep is not None and not keep:
                return output
            rms = h.float().pow(2).mean(-1, keepdim=True).sqrt()
            delta = rms * vec_cpu.to(h.device)
            if keep is not None:
                sel = torch.zeros(h.shape[1], 1, device=h.device)
                sel[keep] = 1.0
                delta = delta * sel
            new = (h.float() + delta).to(h.dtype)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook

    def __enter__(self) -> steering:
        from emoscope.activations import layer_modules

        blocks = layer_modules(self.model, self.n_layers)
        self.calls = {}
        try:
            for key, spec in enumerate(self.plan):
                vec = np.asarray(spec.vector, dtype=np.float32) * float(spec.alpha)
                handle = blocks[spec.layer - 1].register_forward_hook(self._hook(key, vec))
                self.handles.append(handle)
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove every hook this context registered (safe to call twice)."""
        while self.handles:
            self.handles.pop().remove()

    def __exit__(self, *exc: object) -> None:
        self.remove()


# --------------------------------------------------------------------------------------------
# Generation and evaluation


def _prompt_texts(
    lm: LoadedModel, prompts: Sequence[str], chat: bool, system: str | None = None
) -> list[str]:
    from emoscope.activations import render_chat

    if not chat:
        return [p if system is None else f"{system}\n\n{p}" for p in prompts]
    head = [] if system is None else [{"role": "system", "content": system}]
    return [render_chat(lm.tokenizer, [*head, {"role": "user", "content": p}]) for p in prompts]


def generate(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    plan: Sequence[SteeringSpec] | None = None,
    positions: str | Sequence[int] = "all",
    chat: bool = True,
    system: str | None = None,
    max_new_tokens: int = 40,
    do_sample: bool = False,
    temperature: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
) -> list[str]:
    """Continue each prompt (greedy by default), optionally under a steering plan.

    Prompts are rendered as a user chat turn (after ``system``, if given) when ``chat`` and
    left-padded in batches. A plan whose vectors are 2-D, one row per prompt (see
    :meth:`EmotionDirections.row_plan`), steers each prompt its own way within one batch.
    Returns the new text only.
    """
    import contextlib

    import torch

    if not lm.causal:
        raise EmoscopeError(f"{lm.name} is not a causal language model; cannot generate")
    tok = lm.tokenizer
    texts = _prompt_texts(lm, prompts, chat, system)
    special = not (chat and getattr(tok, "chat_template", None))
    side = tok.padding_side
    tok.padding_side = "left"
    outs: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tok(
                texts[start : start + batch_size], return_tensors="pt", padding=True,
                add_special_tokens=special,
            ).to(lm.device)  # fmt: skip
            torch.manual_seed(seed)
            stop = start + batch_size
            rows = [
                SteeringSpec(sp.layer, sp.vector[start:stop] if sp.vector.ndim == 2 else sp.vector,
                             sp.alpha)
                for sp in plan or ()
            ]  # fmt: skip
            ctx = steering(lm, rows, positions=positions) if rows else contextlib.nullcontext()
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
            if do_sample:
                kwargs["temperature"] = temperature
            with ctx, torch.inference_mode():
                gen = lm.model.generate(**enc, pad_token_id=tok.pad_token_id, **kwargs)
            new = gen[:, enc["input_ids"].shape[1] :]
            outs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    finally:
        tok.padding_side = side
    return outs


def continuation_perplexity(
    lm: LoadedModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    chat: bool = True,
    system: str | None = None,
) -> list[float]:
    """Perplexity of each continuation given its prompt under the (unsteered) model.

    ``nan`` for an empty continuation. Loops score low (they are predictable): read it with
    :func:`emoscope.metrics.repetition_report`.
    """
    import torch

    tok = lm.tokenizer
    texts = _prompt_texts(lm, prompts, chat, system)
    special = not (chat and getattr(tok, "chat_template", None))
    out = []
    with torch.inference_mode():
        for prompt, cont in zip(texts, continuations, strict=True):
            p_ids = tok(prompt, add_special_tokens=special)["input_ids"]
            c_ids = tok(" " + cont, add_special_tokens=False)["input_ids"] if cont else []
            if not c_ids:
                out.append(float("nan"))
                continue
            ids = torch.tensor([list(p_ids) + list(c_ids)], device=lm.device)
            logits = lm.model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            targets = ids[0, 1:]
            nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            out.append(float(torch.exp(nll[len(p_ids) - 1 :].mean())))
    return out


def judge_replies(
    texts: Sequence[str], recognizer: Any, taxonomy: str = "ekman"
) -> list[str | None]:
    """The emotion a recogniser reads in each reply, ``None`` for a degenerate reply.

    Degenerate replies (:func:`emoscope.metrics.is_degenerate`: empty or looping) are never
    shown to the recogniser, so broken text cannot count as a steering success.
    """
    from emoscope.labels import map_prediction
    from emoscope.metrics import is_degenerate
    from emoscope.recognizers import load_recognizer

    rec = load_recognizer(recognizer) if isinstance(recognizer, str) else recognizer
    keep = [i for i, t in enumerate(texts) if not is_degenerate(t)]
    out: list[str | None] = [None] * len(texts)
    if keep:
        preds = rec.predict([texts[i] for i in keep])
        for i, p in zip(keep, preds, strict=True):
            out[i] = map_prediction(p, taxonomy).label
    return out


def evaluate_steering(
    lm: LoadedModel,
    directions: EmotionDirections,
    emotion: str,
    prompts: Sequence[str],
    *,
    alphas: Sequence[float] = (0.0, 4.0, 8.0),
    layers: Sequence[int] | None = None,
    positions: str | Sequence[int] = "all",
    recognizer: Any = "lexicon",
    taxonomy: str = "ekman",
    chat: bool = True,
    system: str | None = None,
    max_new_tokens: int = 40,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Steer towards ``emotion`` with each ``alpha`` and score the continuations.

    Per ``alpha``: expression accuracy (the success rate: share of all continuations that are
    not degenerate and whose top emotion, by ``recognizer`` mapped into ``taxonomy``, is
    ``emotion``; see :func:`judge_replies`), the distribution of recognised labels (degenerate
    replies under ``"degenerate"``), repetition statistics
    (:func:`emoscope.metrics.repetition_report`), and the mean and median perplexity of the
    non-degenerate continuations under the unsteered model. ``alpha = 0`` is the unsteered
    baseline.
    """
    from emoscope.metrics import repetition_report
    from emoscope.recognizers import load_recognizer

    rec = load_recognizer(recognizer) if isinstance(recognizer, str) else recognizer
    rows = []
    for alpha in alphas:
        plan = directions.plan({emotion: float(alpha)}, layers) if alpha else None
        texts = generate(
            lm, prompts, plan=plan, positions=positions, chat=chat, system=system,
            max_new_tokens=max_new_tokens, batch_size=batch_size,
        )  # fmt: skip
        found = judge_replies(texts, rec, taxonomy)
        ppl = continuation_perplexity(lm, prompts, texts, chat=chat, system=system)
        finite = [x for x, f in zip(ppl, found, strict=True) if math.isfinite(x) and f is not None]
        counts: dict[str, int] = {}
        for lab in found:
            key = "degenerate" if lab is None else lab
            counts[key] = counts.get(key, 0) + 1
        rows.append(
            {
                "alpha": float(alpha),
                "expression_accuracy": float(np.mean([f == emotion for f in found])),
                "recognised": counts,
                **repetition_report(texts),
                "perplexity_mean": float(np.mean(finite)) if finite else float("nan"),
                "perplexity_median": float(np.median(finite)) if finite else float("nan"),
                "examples": [{"prompt": p, "text": t} for p, t in zip(prompts, texts, strict=True)][
                    :5
                ],
            }
        )
    return {
        "emotion": emotion,
        "recognizer": getattr(rec, "name", str(recognizer)),
        "taxonomy": taxonomy,
        "layers": list(directions.layers if layers is None else layers),
        "positions": positions if isinstance(positions, str) else list(positions),
        "n_prompts": len(prompts),
        "rows": rows,
    }
