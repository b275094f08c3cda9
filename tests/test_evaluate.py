"""Tests of emoscope.evaluate: batching, taxonomy mapping, label/calibration/VAD metrics."""

from __future__ import annotations

import json
import math

import pytest

from emoscope.datasets.base import Dataset, Example
from emoscope.errors import EmoscopeError
from emoscope.evaluate import evaluate, map_prediction
from emoscope.labels import get_taxonomy
from emoscope.prediction import EmotionPrediction
from eval_helpers import (
    GOEMOTIONS_ROWS,
    DroppingRecognizer,
    FlakyParserRecognizer,
    KeywordRecognizer,
    MeldKeywordRecognizer,
    MultiKeywordRecognizer,
    conversational,
    texts_dataset,
)


def test_single_label_mapped_from_goemotions() -> None:
    result = evaluate(KeywordRecognizer(), conversational(), progress=False)
    assert result.mapping == "official:goemotions->ekman->meld"
    assert result.recognizer == "keyword" and result.recognizer_taxonomy == "goemotions"
    assert (result.dataset, result.split, result.taxonomy, result.n) == (
        "toy-meld",
        "test",
        "meld",
        7,
    )
    assert result.classification is not None
    assert result.classification["accuracy"] == pytest.approx(6 / 7)
    assert not result.classification["multi_label"]
    assert result.labels == list(get_taxonomy("meld").labels)
    # The one error: "annoyed" (annoyance -> anger) for gold fear.
    assert result.confusion is not None
    fear, anger = result.labels.index("fear"), result.labels.index("anger")
    assert result.confusion[fear][anger] == 1
    assert sum(map(sum, result.confusion)) == 7
    assert sum(result.confusion[i][i] for i in range(len(result.labels))) == 6
    cal = result.calibration
    assert cal is not None
    assert cal["accuracy"] == pytest.approx(6 / 7)
    assert sum(b["count"] for b in cal["bins"]) == 7
    # The joy group collects 12 GoEmotions labels: 0.7 + 11 * 0.3 / 27 on "Thanks a lot."
    assert max(b["confidence"] or 0 for b in cal["bins"]) == pytest.approx(0.7 + 11 * 0.3 / 27)
    assert 0 <= cal["ece"] <= 1 and 0 < cal["brier"] < 2


def test_identity_mapping_and_exact_calibration() -> None:
    result = evaluate(MeldKeywordRecognizer(), conversational(), progress=False)
    assert result.mapping == "identity"
    assert result.classification is not None
    assert result.classification["accuracy"] == pytest.approx(6 / 7)
    cal = result.calibration
    assert cal is not None
    # Every prediction puts 0.7 on its label and 0.05 on each of the other six.
    right, wrong = 0.3**2 + 6 * 0.05**2, 0.7**2 + 0.95**2 + 5 * 0.05**2
    assert cal["brier"] == pytest.approx((6 * right + wrong) / 7)
    assert cal["ece"] == pytest.approx(abs(6 / 7 - 0.7))
    assert cal["mean_confidence"] == pytest.approx(0.7)


def test_vad_nearest_mapping_is_recorded() -> None:
    data = texts_dataset([("I am furious", ("mad",)), ("hello", ("neutral",))], "emorynlp")
    result = evaluate(KeywordRecognizer(), data, progress=False)
    assert result.mapping == "vad-nearest"
    assert result.classification is not None and result.classification["n"] == 2


def test_multi_label_gold_with_multi_label_recognizer() -> None:
    result = evaluate(MultiKeywordRecognizer(), texts_dataset(GOEMOTIONS_ROWS, "goemotions"),
                      progress=False)  # fmt: skip
    cls = result.classification
    assert cls is not None and cls["multi_label"]
    assert cls["accuracy"] == pytest.approx(3 / 4)  # exact match; "wow" misses excitement
    assert cls["micro_f1"] == pytest.approx(2 * 6 / (2 * 6 + 0 + 1))
    assert cls["per_label"]["excitement"]["recall"] == 0
    assert result.confusion is None and result.calibration is None


def test_multi_label_gold_with_single_label_recognizer_uses_top_label() -> None:
    result = evaluate(KeywordRecognizer(), texts_dataset(GOEMOTIONS_ROWS, "goemotions"),
                      progress=False)  # fmt: skip
    cls = result.classification
    assert cls is not None and cls["multi_label"]
    assert cls["accuracy"] == pytest.approx(1 / 4)  # only "hello" -> {neutral} is exact
    assert cls["per_label"]["annoyance"]["recall"] == 0  # the top label is anger alone


def test_several_gold_labels_make_a_single_label_taxonomy_multi_label() -> None:
    rows = [("I am furious", ("anger", "disgust")), ("wow", ("surprise",))]
    result = evaluate(MeldKeywordRecognizer(), texts_dataset(rows, "meld"), progress=False)
    assert result.classification is not None and result.classification["multi_label"]
    assert result.classification["accuracy"] == pytest.approx(1 / 2)
    assert result.confusion is None


def test_multi_label_recognizer_on_single_label_data() -> None:
    result = evaluate(MultiKeywordRecognizer(), conversational(), progress=False)
    assert result.classification is not None
    assert result.classification["accuracy"] == pytest.approx(6 / 7)
    assert result.calibration is not None  # noisy-OR scores normalised into a distribution
    assert all(b["confidence"] is None or b["confidence"] <= 1 for b in result.calibration["bins"])


def test_vad_metrics() -> None:
    tax = get_taxonomy("goemotions")
    rows = [
        ("I am furious", "anger"),
        ("love it", "love"),
        ("so sad", "sadness"),
        ("ok", "neutral"),
    ]
    examples = [Example(text, vad=tax.vad_of(label)) for text, label in rows]
    data = Dataset("toy-vad", "test", examples)
    result = evaluate(KeywordRecognizer(), data, progress=False)
    assert result.classification is None and result.mapping is None and result.taxonomy is None
    assert result.vad is not None and result.vad["n"] == 4
    for dim in ("valence", "arousal", "dominance"):
        assert result.vad[dim]["mae"] == pytest.approx(0)
        assert result.vad[dim]["ccc"] == pytest.approx(1)
    assert result.notes == []
    # A recogniser without VAD yields no VAD metrics, and a note says why.
    no_vad = evaluate(MultiKeywordRecognizer(), data, progress=False)
    assert no_vad.vad is None
    assert len(no_vad.notes) == 1 and "no VAD metrics" in no_vad.notes[0]


def test_batches_keep_dialogues_whole() -> None:
    rec = KeywordRecognizer()
    evaluate(rec, conversational(), batch_size=2, progress=False)
    assert rec.batches == [3, 4]
    rec = KeywordRecognizer()
    evaluate(rec, conversational(), progress=False)
    assert rec.batches == [7]
    rec = KeywordRecognizer()
    rows = [(f"text {i}", ("neutral",)) for i in range(5)]
    evaluate(rec, texts_dataset(rows, "meld"), batch_size=2, progress=False)
    assert rec.batches == [2, 2, 1]


def test_limit_keeps_whole_dialogues() -> None:
    result = evaluate(KeywordRecognizer(), conversational(), limit=2, progress=False)
    assert (result.n, result.limit) == (3, 2)


def test_counts_parse_failures_and_metadata() -> None:
    rows = [("what ???", ("neutral",)), ("wow", ("surprise",)), ("??? again", ("neutral",))]
    result = evaluate(FlakyParserRecognizer(), texts_dataset(rows, "meld"), progress=False)
    assert result.parse_failures == 2
    assert result.seconds >= 0 and result.texts_per_second > 0
    assert result.version and result.timestamp.endswith("+00:00")


def test_to_dict_is_strict_json() -> None:
    data = conversational()
    d = evaluate(KeywordRecognizer(), data, progress=False).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["classification"]["n"] == 7


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate(KeywordRecognizer(), conversational(), progress=False)
    assert capsys.readouterr().err == ""
    evaluate(KeywordRecognizer(), conversational(), progress=True)
    captured = capsys.readouterr()
    assert "7/7" in captured.err and captured.out == ""


def test_bad_recognizer_output_and_arguments() -> None:
    with pytest.raises(EmoscopeError, match="returned 2 predictions for a batch of 3"):
        evaluate(DroppingRecognizer(), conversational(), batch_size=1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(KeywordRecognizer(), conversational(), batch_size=0)
    with pytest.raises(EmoscopeError, match="no examples"):
        evaluate(KeywordRecognizer(), texts_dataset([], "meld"))


def test_map_prediction() -> None:
    pred = KeywordRecognizer().predict(["I am annoyed"])[0]
    assert map_prediction(pred, "goemotions") is pred
    mapped = map_prediction(pred, "meld")
    assert mapped.taxonomy == "meld" and mapped.label == "anger"
    assert sum(mapped.probs.values()) == pytest.approx(1)
    assert mapped.vad == pred.vad

    multi = MultiKeywordRecognizer().predict(["furious and annoyed"])[0]
    mapped = map_prediction(multi, "ekman")
    assert mapped.multi_label and mapped.labels == ("anger",)
    # noisy-OR of anger 0.9, annoyance 0.9, disapproval 0.05
    assert mapped.probs["anger"] == pytest.approx(1 - 0.1 * 0.1 * 0.95)
    assert all(0 <= p <= 1 for p in mapped.probs.values())


def test_map_prediction_multi_label_keeps_every_mapped_label() -> None:
    pred = EmotionPrediction(
        probs={"joy": 0.8, "fear": 0.7, "anger": 0.1}, taxonomy="plutchik",
        labels=("joy", "fear"), multi_label=True,
    )  # fmt: skip
    mapped = map_prediction(pred, "meld")
    assert set(mapped.labels) == {"joy", "fear"}
    assert not math.isnan(mapped.confidence)
