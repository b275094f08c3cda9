"""Utterance, Dialogue and EmotionPrediction: construction, validation and JSON round trips."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from emoscope import Dialogue, EmotionPrediction, Utterance

# ------------------------------------------------------------------------------------------
# Utterance and Dialogue
# ------------------------------------------------------------------------------------------


def test_utterance_round_trip() -> None:
    u = Utterance("Oh my God!", speaker="Rachel", id="d1_u3", meta={"emotion": "surprise"})
    d = u.to_dict()
    assert d == {
        "text": "Oh my God!",
        "speaker": "Rachel",
        "id": "d1_u3",
        "meta": {"emotion": "surprise"},
    }
    back = Utterance.from_dict(json.loads(json.dumps(d)))
    assert back == u
    assert back.meta == {"emotion": "surprise"}


def test_utterance_minimal_dict_and_coercion() -> None:
    assert Utterance("hi").to_dict() == {"text": "hi", "speaker": None}
    u = Utterance.from_dict({"text": "hi", "speaker": 7, "id": 12})
    assert u.speaker == "7" and u.id == "12" and u.meta == {}


@pytest.mark.parametrize(
    "bad",
    [{"speaker": "Ross"}, {"text": 3}, {"text": None}, "just a string", ["text", "x"], None],
)
def test_utterance_from_dict_errors(bad: Any) -> None:
    with pytest.raises(ValueError, match="an utterance needs a string 'text' field"):
        Utterance.from_dict(bad)


def test_dialogue_basics() -> None:
    dia = Dialogue(
        [Utterance("hi", "A"), "plain text", Utterance("bye", "B"), Utterance("ok", "A")], id="7"
    )
    assert len(dia) == 4
    assert dia[1] == Utterance("plain text")
    assert [u.text for u in dia] == ["hi", "plain text", "bye", "ok"]
    assert dia.speakers == ["A", "B"]
    assert [u.text for u in dia.context(3)] == ["hi", "plain text", "bye"]
    assert [u.text for u in dia.context(3, window=1)] == ["bye"]
    assert dia.context(0) == []


def test_dialogue_round_trip() -> None:
    dia = Dialogue([Utterance("hi", "A", id="1", meta={"t": 1.5}), Utterance("bye", "B")], id="d9")
    d = dia.to_dict()
    assert d["id"] == "d9"
    assert d["utterances"][0] == {"text": "hi", "speaker": "A", "id": "1", "meta": {"t": 1.5}}
    back = Dialogue.from_dict(json.loads(json.dumps(d)))
    assert back == dia
    assert back.utterances[0].meta == {"t": 1.5}


def test_dialogue_from_list_and_strings() -> None:
    dia = Dialogue.from_dict(["hello", {"text": "hey", "speaker": "B"}])
    assert dia.id is None
    assert [(u.text, u.speaker) for u in dia] == [("hello", None), ("hey", "B")]
    assert Dialogue.from_dict({"id": 3, "utterances": []}).id == "3"


@pytest.mark.parametrize("bad", [{"turns": []}, {"utterances": "hi"}, "hi", 5])
def test_dialogue_from_dict_errors(bad: Any) -> None:
    with pytest.raises(ValueError, match="a dialogue is a list of turns or an object"):
        Dialogue.from_dict(bad)


def test_dialogue_from_dict_bad_turn() -> None:
    with pytest.raises(ValueError, match="string 'text'"):
        Dialogue.from_dict([{"speaker": "A"}])


# ------------------------------------------------------------------------------------------
# EmotionPrediction
# ------------------------------------------------------------------------------------------

PROBS = {"joy": 0.6, "sadness": 0.1, "neutral": 0.3}


def test_prediction_defaults() -> None:
    p = EmotionPrediction(PROBS, "meld")
    assert p.label == "joy"
    assert p.labels == ("joy",)
    assert p.confidence == pytest.approx(0.6)
    assert p.vad is None and p.rationale is None and p.cues == {} and not p.multi_label


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan, math.inf])
def test_prediction_rejects_probability_out_of_range(value: float) -> None:
    with pytest.raises(ValueError, match=r"probability of 'sadness' is .*expected a value in"):
        EmotionPrediction({"joy": 0.5, "sadness": value}, "meld")


def test_prediction_rejects_empty_probs() -> None:
    with pytest.raises(ValueError, match="at least one label probability"):
        EmotionPrediction({}, "meld")


def test_prediction_rejects_unknown_predicted_labels() -> None:
    with pytest.raises(ValueError, match=r"predicted labels \['anger'\] are not in probs"):
        EmotionPrediction(PROBS, "meld", labels=("joy", "anger"))


@pytest.mark.parametrize("vad", [(0.1, 0.2), (0.1, 0.2, 0.3, 0.4), ()])
def test_prediction_rejects_bad_vad_length(vad: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"vad must be \(valence, arousal, dominance\)"):
        EmotionPrediction(PROBS, "meld", vad=vad)  # type: ignore[arg-type]


def test_prediction_coerces_values() -> None:
    vad: Any = [0, 1, -1]
    labels: Any = ["joy"]
    p = EmotionPrediction({"joy": 1, "neutral": 0}, "meld", vad=vad, labels=labels)
    assert p.vad is not None
    assert p.vad == (0.0, 1.0, -1.0) and all(isinstance(x, float) for x in p.vad)
    assert p.labels == ("joy",)
    assert isinstance(p.probs["joy"], float)


def test_prediction_round_trip_full() -> None:
    p = EmotionPrediction(
        {"joy": 0.7, "love": 0.65, "neutral": 0.05},
        "goemotions",
        labels=("joy", "love"),
        vad=(0.8, 0.3, -0.2),
        confidence=0.55,
        rationale="'thank you so much' expresses gratitude and joy",
        cues={"explicit": ["thank you"], "parse_failed": False},
        multi_label=True,
    )
    d = p.to_dict()
    assert d == {
        "taxonomy": "goemotions",
        "label": "joy",
        "labels": ["joy", "love"],
        "probs": {"joy": 0.7, "love": 0.65, "neutral": 0.05},
        "confidence": 0.55,
        "multi_label": True,
        "vad": [0.8, 0.3, -0.2],
        "rationale": "'thank you so much' expresses gratitude and joy",
        "cues": {"explicit": ["thank you"], "parse_failed": False},
    }
    back = EmotionPrediction.from_dict(json.loads(json.dumps(d)))
    assert back == p


def test_prediction_round_trip_minimal() -> None:
    p = EmotionPrediction(PROBS, "meld")
    d = p.to_dict()
    assert "rationale" not in d and "cues" not in d
    assert d["vad"] is None
    assert EmotionPrediction.from_dict(json.loads(json.dumps(d))) == p
    # A dict without the optional keys reads back with defaults.
    bare = EmotionPrediction.from_dict({"probs": PROBS, "taxonomy": "meld"})
    assert bare == p


def test_prediction_top() -> None:
    p = EmotionPrediction({"a": 0.1, "b": 0.5, "c": 0.15, "d": 0.25}, "custom")
    assert p.top(2) == [("b", 0.5), ("d", 0.25)]
    assert p.top() == [("b", 0.5), ("d", 0.25), ("c", 0.15)]
    assert [lab for lab, _ in p.top(10)] == ["b", "d", "c", "a"]


def test_prediction_from_scores() -> None:
    p = EmotionPrediction.from_scores(
        ["neutral", "joy", "anger"], [0.2, 0.3, 0.5], "meld", vad=(-0.5, 0.6, 0.2)
    )
    assert p.probs == {"neutral": 0.2, "joy": 0.3, "anger": 0.5}
    assert p.label == "anger" and p.vad == (-0.5, 0.6, 0.2)
    with pytest.raises(ValueError, match="3 label names but 2 probabilities"):
        EmotionPrediction.from_scores(["neutral", "joy", "anger"], [0.2, 0.8], "meld")


def test_prediction_is_immutable() -> None:
    p = EmotionPrediction(PROBS, "meld")
    with pytest.raises(AttributeError):
        p.taxonomy = "ekman"  # type: ignore[misc]
