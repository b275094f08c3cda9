"""What emoscope reads from a support dialogue before the supporter's next turn.

For each point of a conversation where the supporter is about to speak, :func:`read_states`
runs the emotion encoder once over the conversation (its features of an utterance depend only
on the utterances before it, so one pass serves every prefix) and keeps:

* the seeker's last utterance, its :class:`~emoscope.prediction.EmotionPrediction` and VAD;
* a feature vector for the strategy planner: the encoder's contextual features of the last
  utterance and of the seeker's last utterance, the seeker's emotion distribution and VAD,
  the previous supporter strategy (one-hot, with a slot for "none or unknown"), whether the
  seeker spoke last and the position in the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoscope.datasets.esconv import STRATEGIES, SUPPORTER
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.prediction import EmotionPrediction

__all__ = ["SEEKER_NAMES", "SupportState", "find_seeker", "read_states"]

SEEKER_NAMES = ("seeker", "help-seeker", "user", "usr")
SUPPORTER_NAMES = (SUPPORTER, "assistant", "sys", "system")


@dataclass(frozen=True)
class SupportState:
    """The dialogue as emoscope reads it before one supporter turn.

    Attributes:
        seeker: the seeker's speaker name.
        seeker_index: position of the seeker's last utterance.
        seeker_text: that utterance.
        emotion: emoscope's prediction for it (distribution, VAD).
        previous_strategy: the last supporter turn's ``meta["strategy"]``, if known.
        features: the planner's input vector.
    """

    seeker: str
    seeker_index: int
    seeker_text: str
    emotion: EmotionPrediction
    previous_strategy: str | None
    features: np.ndarray


def find_seeker(dialogue: Dialogue, seeker: str | None = None) -> str:
    """The seeker's speaker name.

    ``seeker`` when given (it must have a turn); else a speaker called ``seeker``,
    ``help-seeker`` or ``user``; else the last speaker that is not called ``supporter`` or
    ``assistant`` (the person the reply answers).

    Raises:
        EmoscopeError: no turn of the seeker (or an empty dialogue).
    """
    speakers = [u.speaker for u in dialogue.utterances]
    if seeker is not None:
        if seeker not in speakers:
            raise EmoscopeError(
                f"the dialogue has no turn by the seeker {seeker!r}; speakers: "
                f"{', '.join(dict.fromkeys(str(s) for s in speakers)) or 'none'}"
            )
        return seeker
    named = [s for s in speakers if s is not None and s.lower() in SEEKER_NAMES]
    if named:
        return named[-1]
    for s in reversed(speakers):
        if s is None or s.lower() not in SUPPORTER_NAMES:
            if s is None:
                raise EmoscopeError(
                    "the dialogue's turns have no speakers; name the seeker's turns "
                    "(speaker 'seeker') or pass the seeker's name"
                )
            return s
    raise EmoscopeError(
        "the dialogue has no seeker turn: every turn is by the supporter; add the seeker's "
        "turns (speaker 'seeker')"
    )


def _strategy_onehot(strategy: str | None) -> np.ndarray:
    v = np.zeros(len(STRATEGIES) + 1)
    v[STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES)] = 1.0
    return v


def state_vector(
    last: np.ndarray,
    seeker_feat: np.ndarray,
    emotion: EmotionPrediction,
    previous_strategy: str | None,
    seeker_last: bool,
    position: int,
) -> np.ndarray:
    """The planner's feature vector (see the module docstring for its parts)."""
    vad = np.asarray(emotion.vad if emotion.vad is not None else (0.0, 0.0, 0.0))
    return np.concatenate(
        [
            last,
            seeker_feat,
            np.asarray(list(emotion.probs.values())),
            vad,
            _strategy_onehot(previous_strategy),
            [float(seeker_last), min(position, 40) / 40.0],
        ]
    )


def read_states(
    recognizer: Any,
    dialogue: Dialogue,
    ends: Sequence[int] | None = None,
    *,
    seeker: str | None = None,
    require_seeker: bool = True,
    outputs: tuple[Sequence[EmotionPrediction], np.ndarray] | None = None,
) -> list[SupportState]:
    """One :class:`SupportState` per history ``dialogue.utterances[:end]`` for ``end`` in
    ``ends`` (default: the whole dialogue).

    ``recognizer`` must offer ``predict_with_features`` (emoscope's encoder,
    :class:`~emoscope.recognizers.encoder.EncoderRecognizer`); ``outputs`` passes its result
    for ``dialogue`` when already computed. With ``require_seeker=False`` a history that has
    no seeker turn yet (the supporter opens) gets a neutral emotion and ``seeker_index`` -1.

    Raises:
        EmoscopeError: a history without a seeker turn, or an ``end`` out of range.
    """
    ends = [len(dialogue)] if ends is None else list(ends)
    try:
        name = find_seeker(dialogue, seeker)
    except EmoscopeError:
        if require_seeker:
            raise
        name = seeker or "seeker"  # no seeker turn anywhere: every history is seeker-less
    if not ends:
        return []
    top = max(ends)
    if min(ends) < 0 or top > len(dialogue) or (require_seeker and min(ends) < 1):
        raise EmoscopeError(f"history ends {ends} out of range for {len(dialogue)} turns")
    if outputs is None:
        outputs = recognizer.predict_with_features([Dialogue(dialogue.utterances[: max(top, 1)])])
    preds, feats = outputs
    zeros = np.zeros(feats.shape[1])
    out = []
    for end in ends:
        turns = dialogue.utterances[:end]
        idx = next((i for i in range(end - 1, -1, -1) if turns[i].speaker == name), -1)
        if idx < 0 and require_seeker:
            raise EmoscopeError(
                f"the dialogue has no seeker turn before turn {end + 1} (seeker {name!r})"
            )
        previous = next(
            (u.meta.get("strategy") for u in reversed(turns) if u.speaker != name), None
        )
        emotion = preds[idx] if idx >= 0 else _neutral_like(preds[0])
        out.append(
            SupportState(
                seeker=name,
                seeker_index=idx,
                seeker_text=turns[idx].text if idx >= 0 else "",
                emotion=emotion,
                previous_strategy=previous,
                features=state_vector(
                    feats[end - 1] if end > 0 else zeros,
                    feats[idx] if idx >= 0 else zeros,
                    emotion,
                    previous,
                    idx == end - 1,
                    end,
                ),
            )
        )
    return out


def _neutral_like(pred: EmotionPrediction) -> EmotionPrediction:
    """A prediction over ``pred``'s labels that is all neutral (or uniform), VAD at 0."""
    labels = list(pred.probs)
    neutral = "neutral" if "neutral" in labels else None
    probs = {k: (1.0 if k == neutral else 0.0) if neutral else 1.0 / len(labels) for k in labels}
    return EmotionPrediction(probs, pred.taxonomy, vad=(0.0, 0.0, 0.0))
