"""Language detection and input warnings, and that they reach every output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emoscope.language import detect, input_warnings
from emoscope.prediction import PREDICTION_SCHEMA, EmotionPrediction

pytest.importorskip("py3langid")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我非常生气，你太过分了！", "zh"),
        ("¡Estoy muy enfadado contigo, eres un mentiroso!", "es"),
        ("Ich bin heute so glücklich, dass du gekommen bist!", "de"),
        ("Okay.", "en"),  # langid alone says Tagalog (p 0.07): short Latin texts stay English
        ("Oh my God!", "en"),
        ("ok see you", "en"),  # langid: Nigerian Pidgin 0.52, English 0.21
        ("I can't believe you did this for me!", "en"),
    ],
)
def test_detect(text: str, language: str) -> None:
    assert detect(text).language == language


def test_warnings() -> None:
    assert input_warnings("I got the job!") == []
    (w,) = input_warnings("我非常生气")
    assert w.startswith("not-english:") and "'zh'" in w
    for text in ("😀😀😀", "12:30 !!!", "..."):
        (w,) = input_warnings(text)
        assert w.startswith("no-letters:")
        assert detect(text).language is None


def test_language_and_warnings_round_trip_and_schema() -> None:
    p = EmotionPrediction({"joy": 0.7, "neutral": 0.3}, "ekman", language="es",
                          warnings=["not-english: x"])  # fmt: skip
    d = p.to_dict()
    assert d["language"] == "es" and d["warnings"] == ["not-english: x"]
    assert EmotionPrediction.from_dict(d) == p
    assert {"language", "warnings"} <= set(PREDICTION_SCHEMA["properties"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(d, PREDICTION_SCHEMA)
    assert "language" not in EmotionPrediction({"joy": 1.0}, "ekman").to_dict()


def test_mapping_keeps_language_and_warnings() -> None:
    from emoscope.evaluate import map_prediction

    p = EmotionPrediction({"joy": 0.7, "neutral": 0.3}, "meld", language="zh", warnings=["w: x"])
    q = map_prediction(p, "plutchik")
    assert q.language == "zh" and q.warnings == ("w: x",)


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from emoscope.recognizers.encoder import EncoderRecognizer, default_model_path

    if not (default_model_path() / "model.safetensors").exists():
        pytest.skip("default model not built")
    return EncoderRecognizer()


def _long_dialogue(n: int):  # type: ignore[no-untyped-def]
    from emoscope import Dialogue, Utterance

    return Dialogue([Utterance(f"line number {i}, okay?", "AB"[i % 2]) for i in range(n)])


def test_default_model_flags_language_and_truncation(model) -> None:  # type: ignore[no-untyped-def]
    zh, emoji, en = model.predict(["我非常生气，你太过分了！", "😀😀", "thanks, that's so kind"])
    assert zh.language == "zh" and zh.warnings[0].startswith("not-english:")
    assert emoji.language is None and emoji.warnings[0].startswith("no-letters:")
    assert en.language == "en" and en.warnings == ()
    n = model.config.max_turns + 3
    with pytest.warns(UserWarning, match="oldest context turns were dropped"):
        preds = model.predict([_long_dialogue(n)])
    flagged = [i for i, p in enumerate(preds) if any(w.startswith("context-truncated:")
                                                     for w in p.warnings)]  # fmt: skip
    assert flagged == list(range(model.config.max_turns, n))


def test_truncation_warning_reaches_http_and_annotate(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from emoscope.annotate import AnnotateOptions, annotate
    from emoscope.serve import ServeConfig, create_app

    n = model.config.max_turns + 2
    d = _long_dialogue(n)
    with TestClient(create_app(ServeConfig(), recognizer=model)) as client:
        body = {"utterances": [{"speaker": u.speaker, "text": u.text} for u in d.utterances]}
        with pytest.warns(UserWarning):
            r = client.post("/v1/dialogue", json=body)
        assert r.status_code == 200, r.text
        got = [u["prediction"].get("warnings", []) for u in r.json()["utterances"]]
        assert got[0] == [] and got[-1][0].startswith("context-truncated:")
        r = client.post("/v1/analyze", json={"texts": ["¡Estoy muy enfadado contigo!"]})
        pred = r.json()["predictions"][0]
        assert pred["language"] == "es" and pred["warnings"][0].startswith("not-english:")
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "dlg", "spk"])
        w.writerows([[u.text, "d", u.speaker] for u in d.utterances])
    opts = AnnotateOptions(recognizer="default", dialogue_col="dlg", speaker_col="spk")
    with pytest.warns(UserWarning):
        annotate(src, tmp_path / "out.csv", opts, workers=1, progress=False, recognizer=model)
    with open(tmp_path / "out.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["pred_language"] == "en" and json.loads(rows[0]["pred_warnings"]) == []
    assert json.loads(rows[-1]["pred_warnings"])[0].startswith("context-truncated:")


def test_langid_model_is_decompressed_once_into_the_cache(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("py3langid")
    from emoscope import language

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path))
    language._identifier.cache_clear()
    language._english_column.cache_clear()
    try:
        first = [detect(t) for t in ("Je suis très content", "I am so happy", "我非常生气")]
        (cached,) = (tmp_path / "langid").glob("model-*.npz")
        assert not list((tmp_path / "langid").glob("*.tmp"))
        stamp = cached.stat().st_mtime_ns
        language._identifier.cache_clear()
        language._english_column.cache_clear()
        assert [detect(t) for t in ("Je suis très content", "I am so happy", "我非常生气")] == first
        assert cached.stat().st_mtime_ns == stamp  # read, not written again
        assert [d.language for d in first] == ["fr", "en", "zh"]
    finally:
        language._identifier.cache_clear()
        language._english_column.cache_clear()
