"""Which words drove a prediction: word-level occlusion attributions.

A word's weight is how much the probability of the explained label drops when that word is
removed from the text and everything else stays (occlusion, Zeiler & Fergus, 2014, "Visualizing
and Understanding Convolutional Networks"; for text, the leave-one-out "erasure" of Li, Monroe &
Jurafsky, 2016, "Understanding Neural Networks through Representation Erasure"). Positive
weights support the label, negative ones speak against it. It needs nothing but ``predict``, so
it explains any recogniser, and one batch of ``n_words + 1`` inputs per text. Faithfulness
(deletion curve against random words) and cost are measured in ``benchmarks/explain.py``.

In a dialogue the words of each turn are occluded in that turn only, its context kept as it was
(the default model reads turns causally, so later turns never matter).

The result is a normal :class:`~emoscope.prediction.EmotionPrediction` whose ``cues`` hold
``attributions`` ([{"word", "weight", "start", "end"}, ...]), ``attribution_label`` and
``attribution_method`` (``"occlusion"``)
(words in text order; ``start``/``end`` are character offsets). Read them back with
:func:`cue_words`; :func:`top_cues` gives the strongest supporting words.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from emoscope.dialogue import Dialogue, Utterance
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Input, Recognizer

__all__ = ["Cue", "cue_words", "explain", "split_words", "top_cues"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Cue:
    """One word of the text and its attribution to the explained label."""

    word: str
    weight: float
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        """``{"word", "weight", "start", "end"}``."""
        return dataclasses.asdict(self)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """The whitespace-separated words of ``text`` with their character offsets."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the character ranges ``spans`` cut out (whitespace collapsed)."""
    keep, last = [], 0
    for s, e in sorted(spans):
        keep.append(text[last:s])
        last = e
    keep.append(text[last:])
    return " ".join("".join(keep).split())


EMPTY_TEXT = "."


def remove_words(text: str, indices: Sequence[int]) -> str:
    """``text`` without the words at ``indices`` (of :func:`split_words`).

    Removing every word gives :data:`EMPTY_TEXT` (a lone full stop): recognisers refuse empty
    text, and a full stop carries no emotion.
    """
    words = split_words(text)
    return _without(text, [(words[i][1], words[i][2]) for i in indices]) or EMPTY_TEXT


def _with_turn(d: Dialogue, turn: int, text: str) -> Dialogue:
    """The first ``turn + 1`` turns of ``d``, turn ``turn`` replaced by ``text``."""
    turns = list(d.utterances[: turn + 1])
    u = turns[turn]
    turns[turn] = Utterance(text, u.speaker, u.id)
    return Dialogue(turns, id=d.id)


def _attach(
    pred: EmotionPrediction, label: str, text: str, probs: Sequence[float]
) -> EmotionPrediction:
    base = pred.probs[label]
    cues = [
        Cue(w, round(base - p, 6), s, e).to_dict()
        for (w, s, e), p in zip(split_words(text), probs, strict=True)
    ]
    return dataclasses.replace(
        pred,
        cues={
            **pred.cues,
            "attributions": cues,
            "attribution_label": label,
            "attribution_method": "occlusion",
        },
    )


def explain(
    recognizer: Recognizer, inputs: Sequence[Input], label: str | None = None
) -> list[EmotionPrediction]:
    """Predictions for ``inputs`` (as :meth:`Recognizer.predict`) with word attributions.

    Args:
        recognizer: any recogniser (route it first to answer in another taxonomy, see
            :func:`emoscope._views.route`).
        inputs: texts and/or dialogues.
        label: the label to explain (normalised in the recogniser's taxonomy); default: each
            prediction's top label.
    """
    if label is not None:
        label = recognizer.taxonomy.normalize(label)
    preds = recognizer.predict(list(inputs))
    out: list[EmotionPrediction] = []
    it = iter(preds)
    for x in inputs:
        if isinstance(x, str):
            pred = next(it)
            lab = label or pred.label
            words = split_words(x)
            texts = [remove_words(x, [i]) for i in range(len(words))]
            probs = [p.probs[lab] for p in recognizer.predict(texts)] if texts else []
            out.append(_attach(pred, lab, x, probs))
            continue
        assert isinstance(x, Dialogue)
        for j, u in enumerate(x.utterances):
            pred = next(it)
            lab = label or pred.label
            words = split_words(u.text)
            variants = [_with_turn(x, j, remove_words(u.text, [i])) for i in range(len(words))]
            found = _per_dialogue(recognizer.predict(variants), variants) if variants else []
            probs = [p[-1].probs[lab] for p in found]
            out.append(_attach(pred, lab, u.text, probs))
    return out


def _per_dialogue(
    preds: list[EmotionPrediction], dialogues: Sequence[Dialogue]
) -> list[list[EmotionPrediction]]:
    out, k = [], 0
    for d in dialogues:
        out.append(preds[k : k + len(d)])
        k += len(d)
    return out


def cue_words(pred: EmotionPrediction) -> list[Cue]:
    """The word attributions of an explained prediction, in text order (empty if none)."""
    return [
        Cue(str(c["word"]), float(c["weight"]), int(c["start"]), int(c["end"]))
        for c in pred.cues.get("attributions", ())
    ]


def top_cues(pred: EmotionPrediction, k: int = 3) -> list[Cue]:
    """The ``k`` words that most support the explained label (positive weight), strongest
    first: e.g. the cause words of an emotion."""
    return sorted((c for c in cue_words(pred) if c.weight > 0), key=lambda c: -c.weight)[:k]
