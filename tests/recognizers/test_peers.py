"""Adapters to peer tools: NRCLex and VADER (skipped when the optional packages are absent)."""

from __future__ import annotations

import math
import sys

import pytest

from emoscope import Dialogue, EmotionPrediction, load_recognizer
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.recognizers.peers import INSTALL_HINT, NRCLexRecognizer, VaderRecognizer, _lemma


def _total(p: EmotionPrediction) -> float:
    return math.fsum(p.probs.values())


@pytest.fixture(scope="module")
def nrc() -> NRCLexRecognizer:
    pytest.importorskip("nrclex")
    return NRCLexRecognizer()


@pytest.fixture(scope="module")
def vader() -> VaderRecognizer:
    pytest.importorskip("vaderSentiment")
    return VaderRecognizer()


# -- missing packages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "factory"),
    [("nrclex", NRCLexRecognizer), ("vaderSentiment.vaderSentiment", VaderRecognizer)],
)
def test_missing_package_raises_with_install_hint(
    monkeypatch: pytest.MonkeyPatch, module: str, factory: type
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(EmoscopeError) as err:
        factory()
    assert INSTALL_HINT in str(err.value)


def test_lemma_fallback_finds_listed_forms() -> None:
    lexicon = {"cry": [], "hate": [], "love": [], "stop": [], "box": [], "party": []}
    assert _lemma("cried", lexicon) == "cry"
    assert _lemma("hates", lexicon) == "hate"
    assert _lemma("loved", lexicon) == "love"
    assert _lemma("stopped", lexicon) == "stop"
    assert _lemma("boxes", lexicon) == "box"
    assert _lemma("parties", lexicon) == "party"
    assert _lemma("love", lexicon) == "love"
    assert _lemma("zebra", lexicon) is None
    assert _lemma("is", {"i": []}) is None  # stems shorter than two letters are not tried


# -- NRCLex ------------------------------------------------------------------------------------


def test_nrclex_counts_emotion_words(nrc: NRCLexRecognizer) -> None:
    (p,) = nrc.predict(["I hate this, it is disgusting"])
    assert p.taxonomy == "plutchik"
    assert set(p.probs) == set(get_taxonomy("plutchik").labels)
    assert _total(p) == pytest.approx(1.0)
    assert p.label in {"anger", "disgust", "fear"}
    assert p.probs["joy"] == 0.0
    assert "hate" in p.cues["words"] and "disgusting" in p.cues["words"]
    assert p.cues["negative"] >= 2 and p.cues["positive"] == 0
    assert p.vad is not None and p.vad[0] < 0


def test_nrclex_reads_inflected_words(nrc: NRCLexRecognizer) -> None:
    (p,) = nrc.predict(["She cried when the dog died"])
    assert p.label == "sadness"
    assert {"cry", "die"} <= set(p.cues["words"])


def test_nrclex_without_emotion_words_is_uniform(nrc: NRCLexRecognizer) -> None:
    (p,) = nrc.predict(["The meeting is at 3pm."])
    assert list(p.probs.values()) == pytest.approx([1 / 8] * 8)
    assert p.confidence == pytest.approx(1 / 8)
    assert p.vad is None
    assert p.cues["words"] == {}


def test_nrclex_dialogue_and_registry(nrc: NRCLexRecognizer) -> None:
    d = Dialogue(["I love you", "I hate you", "ok"])
    preds = nrc.predict([d, "what a happy day"])
    assert len(preds) == 4
    assert preds[0].probs["joy"] > 0 and preds[1].probs["anger"] > 0
    assert all(_total(p) == pytest.approx(1.0) for p in preds)
    assert isinstance(load_recognizer("nrclex"), NRCLexRecognizer)


# -- VADER -------------------------------------------------------------------------------------


def test_vader_maps_sentiment_to_valence(vader: VaderRecognizer) -> None:
    good, bad, flat = vader.predict(
        ["I am so happy and grateful, thank you!", "I hate this, it is awful", "The bus is red."]
    )
    for p in (good, bad, flat):
        assert p.taxonomy == "ekman"
        assert _total(p) == pytest.approx(1.0)
        assert p.vad is not None and p.vad[1:] == (0.0, 0.0)
        assert p.vad[0] == pytest.approx(p.cues["compound"])
    assert good.vad is not None and good.vad[0] > 0.5
    assert good.label in {"joy", "surprise"}
    assert bad.label in {"anger", "disgust", "fear", "sadness"}
    assert flat.label == "neutral"


def test_vader_sigma_sharpens(vader: VaderRecognizer) -> None:
    sharp = VaderRecognizer(sigma=0.1).predict(["The bus is red."])[0]
    wide = vader.predict(["The bus is red."])[0]
    assert sharp.confidence > wide.confidence
    with pytest.raises(ValueError, match="sigma"):
        VaderRecognizer(sigma=0.0)


def test_vader_dialogue_and_registry(vader: VaderRecognizer) -> None:
    preds = vader.predict(["great!", Dialogue(["terrible", "fine"])])
    assert len(preds) == 3
    assert preds[0].vad is not None and preds[1].vad is not None
    assert preds[0].vad[0] > 0 > preds[1].vad[0]
    assert isinstance(load_recognizer("vader"), VaderRecognizer)
