"""Reading labels, confidence, rationale and JSON from LLM answers."""

from __future__ import annotations

import pytest

from emoscope.llm.parsing import (
    extract_rationale,
    match_labels,
    parse_answer,
    parse_confidence,
    parse_json_object,
    parse_label,
    strip_thinking,
    synonyms_for,
)


@pytest.mark.parametrize(
    ("answer", "label", "method"),
    [
        ("joy", "joy", "exact"),
        ("Joy", "joy", "case"),
        ("  SADNESS.\n", "sadness", "case"),
        ("**anger**", "anger", "exact"),
        ('"fear"', "fear", "exact"),
        ("The emotion is surprise.", "surprise", "contains"),
        ("Emotion label: disgust", "disgust", "exact"),
        ("Answer: neutral\nConfidence: 0.7", "neutral", "exact"),
        ("happy", "joy", "synonym"),
        ("The speaker sounds frustrated.", "anger", "synonym"),
        ("no emotion", "neutral", "synonym"),
        ("Nervousness", "fear", "synonym"),  # a GoEmotions label mapped into MELD
        ("surprize", "surprise", "fuzzy"),
        ("sadnes", "sadness", "fuzzy"),
        ("<think>could be anger</think>\njoy", "joy", "exact"),
        ("<answer>anger</answer><confidence>0.9</confidence>", "anger", "exact"),
    ],
)
def test_labels_are_matched_to_the_taxonomy(answer: str, label: str, method: str) -> None:
    parsed = parse_answer(answer, "meld")
    assert parsed.label == label
    assert parsed.method == method
    assert not parsed.parse_failed


@pytest.mark.parametrize(
    "answer",
    ["", "   ", "I cannot tell.", "42", "<think>it is surely joy", "zzzz qqqq", None],
)
def test_unreadable_answers_fail_without_raising(answer: str) -> None:
    parsed = parse_answer(answer, "meld")
    assert parsed.parse_failed
    assert parsed.labels == ()
    assert parsed.method == "unknown"
    assert parsed.label is None


def test_earliest_label_wins_in_free_text() -> None:
    assert parse_answer("Mostly joy, maybe some surprise", "meld").label == "joy"
    # The answer tag beats words in the rationale.
    text = "<rationale>no anger here</rationale>\n<answer>sadness</answer>"
    assert parse_answer(text, "meld").label == "sadness"


def test_emorynlp_synonyms_and_own_labels() -> None:
    assert parse_answer("Joyful", "emorynlp").label == "joyful"
    assert parse_answer("anger", "emorynlp").label == "mad"
    assert parse_answer("calm", "emorynlp").label == "peaceful"
    assert parse_answer("sad", "emorynlp").label == "sad"
    # "mad" and "sad" are too far apart for the fuzzy matcher to confuse them.
    assert match_labels("sadd", "emorynlp") == (("sad",), "fuzzy")


def test_multi_label_answers_keep_every_label_in_order() -> None:
    parsed = parse_answer("gratitude, joy and love", "goemotions")
    assert parsed.labels == ("gratitude", "joy", "love")
    assert parse_answer("gratitude, joy", "goemotions", multi_label=False).labels == ("gratitude",)
    assert parse_answer("grateful and curious", "goemotions").labels == ("gratitude", "curiosity")


def test_synonym_table_covers_every_taxonomy_and_maps_into_it() -> None:
    for tax in ("meld", "ekman", "emorynlp", "goemotions", "plutchik"):
        table = synonyms_for(tax)
        assert table, tax
        from emoscope.labels import get_taxonomy

        labels = set(get_taxonomy(tax).labels)
        assert set(table.values()) <= labels


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("<confidence>0.85</confidence>", 0.85),
        ("<confidence> 85% </confidence>", 0.85),
        ("<confidence>70</confidence>", 0.70),
        ("<CONFIDENCE>1</CONFIDENCE>", 1.0),
        ("<confidence>0</confidence>", 0.0),
        ("Answer: joy\nConfidence: 0.6", 0.6),
        ("<confidence>150</confidence>", None),
        ("<confidence>high</confidence>", None),
        ("<confidence>-0.2</confidence>", None),
        ("joy", None),
    ],
)
def test_verbalised_confidence(text: str, value: float | None) -> None:
    got = parse_confidence(text)
    assert got == (None if value is None else pytest.approx(value))


def test_full_structured_answer() -> None:
    text = (
        "<rationale>She shouts and slams the door.</rationale>\n"
        "<answer>Anger</answer>\n<confidence>80%</confidence>"
    )
    parsed = parse_answer(text, "meld")
    assert parsed.label == "anger"
    assert parsed.confidence == pytest.approx(0.8)
    assert parsed.rationale == "She shouts and slams the door."
    assert parsed.raw == text


def test_rationale_falls_back_to_the_thinking_block() -> None:
    assert extract_rationale("<think> tone is flat </think> neutral") == "tone is flat"
    assert extract_rationale("neutral") is None
    assert strip_thinking("<think>a</think> b <think>c") == "b"


def test_json_objects_are_found_in_noisy_answers() -> None:
    keys = ("ExplicitEmotion", "ImplicitEmotion")
    fenced = (
        'Here you go:\n```json\n{"ExplicitEmotion": "loud", "ImplicitEmotion": "hurt {x}"}\n```'
    )
    assert parse_json_object(fenced, keys) == {
        "ExplicitEmotion": "loud",
        "ImplicitEmotion": "hurt {x}",
    }
    nested = 'x {"a": {"b": 1}} {"ExplicitEmotion": "a\\nb", "ImplicitEmotion": "c"} y'
    assert parse_json_object(nested, keys) == {"ExplicitEmotion": "a b", "ImplicitEmotion": "c"}
    thinking = (
        '<think>{"ExplicitEmotion": "no"}</think>{"ExplicitEmotion": "e", "ImplicitEmotion": "i"}'
    )
    assert parse_json_object(thinking, keys) == {"ExplicitEmotion": "e", "ImplicitEmotion": "i"}
    # Not valid JSON (trailing comma, no closing brace) but the pairs are readable.
    broken = '{"ExplicitEmotion": "tense", "ImplicitEmotion": "afraid",'
    assert parse_json_object(broken, keys) == {
        "ExplicitEmotion": "tense",
        "ImplicitEmotion": "afraid",
    }
    assert parse_json_object('{"ExplicitEmotion": "only one"}', keys) is None
    assert parse_json_object("no json at all", keys) is None
    assert parse_json_object('{"ExplicitEmotion": 3, "ImplicitEmotion": "x"}', keys) is None


# Real SmolLM2-135M-Instruct answers on MELD (zero-shot / few-shot / prc trials of issue 11):
# none of them names a label, and each was once counted as parsed by a fuzzy or synonym match.
@pytest.mark.parametrize(
    "answer",
    [
        "The emotion label that fits Rachel in the utterance",
        "The emotion label that fits Ross in the utterance \"Oh, I'm so sorry",
        "Ross is expressing his feelings about the situation and how he",
        'In the utterance "Eww, gross!" the speaker',
        "The speaker's emotion in this context is a mix of",
        "I'm sorry, but I cannot determine the emotional state of the speaker",
    ],
)
def test_prose_without_a_label_is_unknown(answer: str) -> None:
    parsed = parse_answer(answer, "meld", ignore=["Ross", "Rachel"])
    assert parsed.parse_failed and parsed.method == "unknown", parsed


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("joy", "joy"),
        ("Joyful", "joy"),  # a short answer may be a synonym or a near-miss
        ("Answer: angr", "anger"),  # a marked answer line may be fuzzy-matched
        ("The emotion label that fits Rachel in the utterance is surprise.", "surprise"),
        ('Monica says "I am so happy" and the label is neutral', "neutral"),  # quote skipped
    ],
)
def test_labels_in_short_or_marked_answers_are_read(answer: str, label: str) -> None:
    assert parse_answer(answer, "meld", ignore=["Rachel", "Monica"]).label == label


def test_parse_label() -> None:
    labels = ["anger", "joy", "sadness"]
    assert parse_label("Joy.", labels) == "joy"
    assert parse_label("It is sadness, not joy", labels) == "sadness"
    assert parse_label("enjoyment", labels) is None
    assert parse_label("", labels) is None
