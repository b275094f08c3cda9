"""Word attributions by occlusion: the library function, the CLI and the HTTP API."""

from __future__ import annotations

import json

import pytest

from emoscope import Dialogue, Utterance
from emoscope.explain import cue_words, explain, remove_words, split_words, top_cues
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers import load_recognizer


@pytest.fixture(scope="module")
def lexicon():  # type: ignore[no-untyped-def]
    return load_recognizer("lexicon")


def test_words_and_removal() -> None:
    assert split_words("I  am happy!") == [("I", 0, 1), ("am", 3, 5), ("happy!", 6, 12)]
    assert remove_words("I  am happy!", [1]) == "I happy!"
    assert remove_words("one", [0]) == "."  # never empty: recognisers refuse empty text


def test_weights_are_probability_drops(lexicon) -> None:  # type: ignore[no-untyped-def]
    text = "I am so happy today"
    (pred,) = explain(lexicon, [text])
    cues = cue_words(pred)
    assert [c.word for c in cues] == text.split()
    assert all(text[c.start : c.end] == c.word for c in cues)
    label = pred.cues["attribution_label"]
    assert label == pred.label
    # Each weight is exactly the drop of the label's probability without that word.
    for i, c in enumerate(cues):
        without = lexicon.predict([remove_words(text, [i])])[0].probs[label]
        assert c.weight == pytest.approx(pred.probs[label] - without, abs=1e-5)
    assert top_cues(pred, 1)[0].word == "happy"
    # The lexicon's own cues survive; the attributions survive a JSON round trip.
    assert "known_words" in pred.cues
    back = EmotionPrediction.from_dict(json.loads(json.dumps(pred.to_dict())))
    assert cue_words(back) == cues


def test_explain_a_chosen_label_and_a_dialogue(lexicon) -> None:  # type: ignore[no-untyped-def]
    (pred,) = explain(lexicon, ["I am so happy today"], label="Sadness")
    assert pred.cues["attribution_label"] == "sadness"
    with pytest.raises(ValueError, match="unknown"):
        explain(lexicon, ["x"], label="bliss")
    d = Dialogue([Utterance("I am so happy", "A"), Utterance("this is awful and sad", "B")])
    preds = explain(lexicon, [d])
    assert [[c.word for c in cue_words(p)] for p in preds] == [
        ["I", "am", "so", "happy"],
        ["this", "is", "awful", "and", "sad"],
    ]
    assert preds[1].label == lexicon.predict([d])[1].label


def test_explain_command(lexicon, capsys) -> None:  # type: ignore[no-untyped-def]
    from emoscope import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--recognizer", "lexicon", "--json", "I am so happy today"])
    assert exc.value.code in (0, None)
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "I am so happy today"
    assert max(row["cues"]["attributions"], key=lambda c: c["weight"])["word"] == "happy"
    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--recognizer", "lexicon", "--label", "bliss", "hi"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--recognizer", "lexicon", "I am so happy today"])
    assert exc.value.code in (0, None)
    assert "happy +" in capsys.readouterr().out


def test_http_explain(lexicon) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from emoscope.serve import ServeConfig, create_app

    with TestClient(create_app(ServeConfig(), recognizer=lexicon)) as client:
        plain = client.post("/v1/analyze", json={"text": "I am so happy today"}).json()
        assert "attributions" not in (plain["predictions"][0].get("cues") or {})
        r = client.post("/v1/analyze?explain=true", json={"text": "I am so happy today"})
        cues = r.json()["predictions"][0]["cues"]["attributions"]
        assert [c["word"] for c in cues] == ["I", "am", "so", "happy", "today"]
        body = {"utterances": [{"speaker": "A", "text": "so happy"}, {"text": "awful"}]}
        r = client.post("/v1/dialogue?explain=true", json=body)
        utts = r.json()["utterances"]
        assert [len(u["prediction"]["cues"]["attributions"]) for u in utts] == [2, 1]


def test_neutral_prior_is_for_the_default_model_only(capsys) -> None:  # type: ignore[no-untyped-def]
    from emoscope import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["analyze", "--recognizer", "lexicon", "--neutral-prior", "0.3", "hello"])
    assert exc.value.code == 2
    assert "default model only" in capsys.readouterr().err
