"""The learned lexicon recogniser: tokenising, fitting, predicting, saving, the shipped file."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from emoscope import Dialogue, EmotionPrediction, Utterance, load_recognizer
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.recognizers.lexicon import DEFAULT_LEXICON, LexiconRecognizer, tokenize

CORPUS: list[tuple[str, tuple[str, ...]]] = [
    ("thanks so much for the help", ("gratitude",)),
    ("thank you, that really helped", ("gratitude",)),
    ("many thanks, you are kind", ("gratitude",)),
    ("thanks a lot for sharing this", ("gratitude",)),
    ("thank you so much friend", ("gratitude",)),
    ("thanks, this made my day", ("gratitude", "joy")),
    ("i am so happy today", ("joy",)),
    ("this is great, i feel happy", ("joy",)),
    ("happy days are here again", ("joy",)),
    ("what a happy and fun party", ("joy",)),
    ("so happy for you both", ("joy",)),
    ("i am furious about this", ("anger",)),
    ("this makes me furious and angry", ("anger",)),
    ("angry people everywhere today", ("anger",)),
    ("i am so angry at him", ("anger",)),
    ("furious, absolutely furious", ("anger",)),
    ("i feel so sad and alone", ("sadness",)),
    ("this is a sad day for us", ("sadness",)),
    ("sad news about the dog", ("sadness",)),
    ("i cry because i am sad", ("sadness",)),
    ("so sad to see it end", ("sadness",)),
    ("the bus leaves at noon", ("neutral",)),
    ("it is on the table", ("neutral",)),
    ("the report is due on friday", ("neutral",)),
    ("we moved the meeting to noon", ("neutral",)),
    ("the file is in the folder", ("neutral",)),
    ("i am not happy about this", ("disappointment",)),
    ("not happy with the result", ("disappointment",)),
    ("honestly not happy at all", ("disappointment",)),
    ("the table is on the left", ("neutral",)),
    ("the folder is on the desk", ("neutral",)),
]

VAD_CORPUS: list[tuple[str, tuple[float, float, float]]] = [
    *[(f"a happy and wonderful day {i}", (0.6, 0.3, 0.2)) for i in range(12)],
    *[(f"a sad and lonely night {i}", (-0.6, -0.2, -0.3)) for i in range(12)],
    *[(f"the report on the table {i}", (0.0, -0.1, 0.0)) for i in range(12)],
]


@pytest.fixture(scope="module")
def fitted() -> LexiconRecognizer:
    texts, labels = zip(*CORPUS, strict=True)
    vad_texts, vad_values = zip(*VAD_CORPUS, strict=True)
    return LexiconRecognizer.fit(
        texts,
        labels,
        vad_texts,
        vad_values,
        min_count=2,
        vad_min_count=2,
        training_data={"labels": "test corpus"},
    )


@pytest.fixture(scope="module")
def shipped() -> LexiconRecognizer:
    return LexiconRecognizer()


def _total(p: EmotionPrediction) -> float:
    return math.fsum(p.probs.values())


# -- tokenising --------------------------------------------------------------------------------


def test_tokenize_lowercases_and_keeps_apostrophes() -> None:
    assert tokenize("I DON'T know, do you?") == ["i", "don't", "know", "do", "you", "?"]
    assert tokenize("It\u2019s fine!") == ["it's", "fine", "!"]
    assert tokenize("[NAME] lol 😂") == ["name", "lol", "😂"]


def test_negation_marks_a_short_scope_ending_at_punctuation() -> None:
    toks = tokenize("I am not very happy, but fine", negation=True)
    assert toks == ["i", "am", "not", "not_very", "not_happy", "but", "fine"]
    assert tokenize("I don't like it at all", negation=True) == [
        "i", "don't", "not_like", "not_it", "not_at", "all",
    ]  # fmt: skip
    assert "not_happy" not in tokenize("not happy", negation=False)


# -- fitting -----------------------------------------------------------------------------------


def test_fit_learns_which_words_go_with_which_labels(fitted: LexiconRecognizer) -> None:
    def top(word: str) -> str:
        assoc = fitted.association(word)
        return max(assoc, key=assoc.__getitem__)

    assert top("thanks") == "gratitude"
    assert top("furious") == "anger"
    assert top("sad") == "sadness"
    assert top("happy") == "joy"
    assert top("not_happy") == "disappointment"
    assert fitted.association("thanks")["gratitude"] > fitted.association("thanks")["anger"]
    assert all(v >= 0 for v in fitted.association("the").values())
    assert fitted.association("zebra") == {}
    assert "zebra" not in fitted.vocabulary


def test_min_count_drops_rare_words() -> None:
    texts, labels = zip(*CORPUS, strict=True)
    loose = LexiconRecognizer.fit(texts, labels, min_count=1)
    strict = LexiconRecognizer.fit(texts, labels, min_count=4)
    assert "kind" in loose.vocabulary and "kind" not in strict.vocabulary
    assert set(strict.vocabulary) < set(loose.vocabulary)


def test_fit_learns_word_vad(fitted: LexiconRecognizer) -> None:
    happy, sad = fitted.word_vad("wonderful"), fitted.word_vad("lonely")
    assert happy is not None and sad is not None
    assert happy[0] > 0.3 and sad[0] < -0.3
    assert fitted.word_vad("zebra") is None
    slopes = [slope for _, slope in fitted.header["vad_calibration"]]
    assert all(s > 0 for s in slopes)


def test_fit_accepts_single_label_strings() -> None:
    texts = ["thanks a lot", "thanks again", "the table"]
    rec = LexiconRecognizer.fit(texts, ["gratitude", "gratitude", "neutral"], min_count=1)
    assert rec.predict(["thanks"])[0].label == "gratitude"


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 texts but 1"):
        LexiconRecognizer.fit(["a", "b"], [("joy",)])
    with pytest.raises(EmoscopeError, match=r"training text 1.*happyish"):
        LexiconRecognizer.fit(["a", "b"], [("joy",), ("happyish",)])
    with pytest.raises(ValueError, match="go together"):
        LexiconRecognizer.fit(["a"], [("joy",)], vad_texts=["a"])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        LexiconRecognizer.fit(["a"], [("joy",)], ["a"], [(4.0, 3.0, 3.0)], min_count=1)
    with pytest.raises(ValueError, match="no labelled texts"):
        LexiconRecognizer.fit(["a"], [()])


# -- predicting --------------------------------------------------------------------------------


def test_predictions_follow_the_learned_words(fitted: LexiconRecognizer) -> None:
    preds = fitted.predict(
        ["thanks so much!", "i am furious", "such a sad day", "the meeting is at noon"]
    )
    assert [p.label for p in preds] == ["gratitude", "anger", "sadness", "neutral"]
    for p in preds:
        assert p.taxonomy == "goemotions"
        assert not p.multi_label
        assert p.labels == (p.label,)
        assert set(p.probs) == set(get_taxonomy("goemotions").labels)
        assert _total(p) == pytest.approx(1.0)
        assert p.confidence == pytest.approx(max(p.probs.values()))
        assert p.vad is not None and all(-1.0 <= x <= 1.0 for x in p.vad)


def test_negation_changes_the_prediction(fitted: LexiconRecognizer) -> None:
    happy, not_happy = fitted.predict(["so happy", "not happy"])
    assert happy.label == "joy"
    assert not_happy.label == "disappointment"


def test_vad_follows_the_words(fitted: LexiconRecognizer) -> None:
    happy, sad = fitted.predict(["a wonderful happy day", "a lonely sad night"])
    assert happy.vad is not None and sad.vad is not None
    assert happy.vad[0] > 0.2 > -0.2 > sad.vad[0]


def test_text_without_known_words_falls_back_to_the_prior(fitted: LexiconRecognizer) -> None:
    (p,) = fitted.predict(["zebra xylophone"])
    assert p.label == "neutral"  # the most frequent training label
    assert p.confidence < 0.2
    assert p.vad == pytest.approx(get_taxonomy("goemotions").expected_vad(p.probs))
    assert p.cues["words"] == {} and p.cues["known_words"] == 0


def test_cues_list_matched_words_with_their_top_label(fitted: LexiconRecognizer) -> None:
    (p,) = fitted.predict(["thanks, I am furious"])
    assert p.cues["words"]["thanks"] == "gratitude"
    assert p.cues["words"]["furious"] == "anger"
    assert p.cues["known_words"] >= 2
    json.dumps(p.to_dict())


def test_temperature_flattens_without_changing_the_ranking(fitted: LexiconRecognizer) -> None:
    text = ["thanks so much for the help"]
    sharp = fitted.predict(text)[0]
    fitted_temp = fitted.temperature
    try:
        fitted.temperature = fitted_temp * 4
        flat = fitted.predict(text)[0]
    finally:
        fitted.temperature = fitted_temp
    assert flat.label == sharp.label
    assert flat.confidence < sharp.confidence
    with pytest.raises(ValueError, match="positive"):
        LexiconRecognizer(temperature=0.0)


def test_dialogue_gives_one_prediction_per_utterance(fitted: LexiconRecognizer) -> None:
    d = Dialogue([Utterance("thanks so much", "A"), Utterance("i am furious", "B"), "so sad"])
    preds = fitted.predict(["so happy", d, "the table"])
    assert len(preds) == 5
    assert [p.label for p in preds] == ["joy", "gratitude", "anger", "sadness", "neutral"]
    # each utterance is read on its own, whatever the context
    assert preds[2].probs == fitted.predict(["i am furious"])[0].probs
    with pytest.raises(TypeError):
        fitted.predict("a single string")  # type: ignore[arg-type]


# -- saving and loading ------------------------------------------------------------------------


def test_save_load_round_trip_predicts_identically(
    fitted: LexiconRecognizer, tmp_path: Path
) -> None:
    path = tmp_path / "lex.npz"
    fitted.save(path)
    loaded = LexiconRecognizer.load(path)
    texts = ["thanks so much!", "not happy", "a lonely sad night", "zebra", "   ."]
    for a, b in zip(fitted.predict(texts), loaded.predict(texts), strict=True):
        assert a.probs == b.probs
        assert a.vad == b.vad
        assert a.cues == b.cues
    assert loaded.vocabulary == fitted.vocabulary
    assert loaded.header == fitted.header
    header = loaded.header
    assert header["format"] == "emoscope-lexicon"
    assert header["training_data"] == {"labels": "test corpus"}
    assert header["min_count"] == 2
    assert isinstance(header["emoscope_version"], str)
    assert path.stat().st_size < 20_000


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(EmoscopeError, match="does not exist"):
        LexiconRecognizer(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip file")
    with pytest.raises(EmoscopeError, match="not an emoscope lexicon"):
        LexiconRecognizer(bad)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(EmoscopeError, match="not an emoscope lexicon"):
        LexiconRecognizer(other)


# -- the shipped lexicon -----------------------------------------------------------------------


def test_shipped_lexicon_is_small_and_documented(shipped: LexiconRecognizer) -> None:
    resource = resources.files("emoscope").joinpath("data", DEFAULT_LEXICON)
    assert len(resource.read_bytes()) < 2_000_000
    header = shipped.header
    assert "GoEmotions train" in header["training_data"]["labels"]
    assert "EmoBank train" in header["training_data"]["vad"]
    assert header["min_count"] >= 1
    assert len(shipped.vocabulary) > 1000


def test_registry_builds_the_shipped_lexicon() -> None:
    rec = load_recognizer("lexicon")
    assert isinstance(rec, LexiconRecognizer)
    assert rec.labels == get_taxonomy("goemotions").labels


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("I am so happy and grateful, thank you!", {"gratitude", "joy", "love", "admiration"}),
        ("This is disgusting, gross.", {"disgust", "annoyance", "anger"}),
        ("I'm so sad, I miss her so much.", {"sadness", "grief", "disappointment"}),
        ("Why would he do that? I don't get it", {"confusion", "curiosity"}),
        ("I'm really scared and worried about tomorrow", {"fear", "nervousness"}),
        ("lol that's hilarious", {"amusement", "joy"}),
    ],
)
def test_shipped_lexicon_gets_obvious_sentences_right(
    shipped: LexiconRecognizer, text: str, family: set[str]
) -> None:
    (p,) = shipped.predict([text])
    assert p.label in family, p.top(3)
    assert _total(p) == pytest.approx(1.0)


def test_shipped_lexicon_vad_orders_positive_above_negative(shipped: LexiconRecognizer) -> None:
    good, bad = shipped.predict(["What a wonderful, lovely day!", "A horrible, tragic death."])
    assert good.vad is not None and bad.vad is not None
    assert good.vad[0] > 0 > bad.vad[0]
