"""The ``llm`` recogniser with a scripted LLM behind the real OpenAI-protocol client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import ChatServer, Reply, completion

from emoscope.datasets import load_dataset
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.evaluate import evaluate
from emoscope.recognizers import load_recognizer
from emoscope.recognizers.base import flatten_inputs
from emoscope.recognizers.llm import LLMRecognizer


def make(server: ChatServer, tmp_path: Path, **kwargs: Any) -> LLMRecognizer:
    kwargs.setdefault("taxonomy", "meld")
    return LLMRecognizer(
        backend="openai",
        model="scripted-llm",
        base_url=server.url,
        cache_dir=tmp_path / "cache",
        **kwargs,
    )


def final_requests(server: ChatServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["messages"][0]["role"] == "system"]


def test_prc_end_to_end_with_retrieval_and_resumable_caches(
    chat_server: ChatServer, tmp_path: Path, mini_data_root: Path
) -> None:
    data = load_dataset("meld", "test", root=mini_data_root)
    rec = make(chat_server, tmp_path, prompt="prc", retrieve=2, data_root=str(mini_data_root))
    assert rec.name == "llm-prc-scripted-llm"
    preds = rec.predict(data.inputs())
    assert len(preds) == len(data.examples)
    n_utts = len(data.examples)
    n_profiles = sum(len(d.speakers) for d in data.dialogues or [])
    assert len(chat_server.requests) == 2 * n_utts + n_profiles
    for ex, p in zip(data.examples, preds, strict=True):
        speaker = ex.dialogue[ex.index].speaker  # type: ignore[index]
        assert p.cues["explicit_emotion"].startswith(f"Outwardly the speaker says: {speaker}: ")
        assert p.cues["implicit_emotion"].startswith("Inside they seem")
        assert p.cues["speaker_profile"] == f"{speaker} is lively and direct."
        assert p.cues["stage1_failed"] == []
        assert len(p.cues["examples"]) == 2
        assert all(e["source"] == "meld-train" for e in p.cues["examples"])
        assert p.cues["parse_failed"] is False and p.cues["parse_method"] == "exact"
        assert p.probs[p.label] == 1.0 and p.confidence == 1.0
        assert (p.cues["prompt_tokens"], p.cues["completion_tokens"]) == (100, 2)
    # Every profile is charged once: 50 prompt tokens per speaker and dialogue.
    assert sum(p.cues["stage1_prompt_tokens"] for p in preds) == 40 * n_utts + 50 * n_profiles
    # The final prompt carries the cues and the demonstrations.
    system = final_requests(chat_server)[0]["messages"][0]["content"]
    assert "- Explicit emotion: Outwardly the speaker says" in system
    assert "(from meld-train, distance: " in system
    # The built store and one cue file per dialogue are on disk.
    cache = tmp_path / "cache"
    assert len(list((cache / "cues").glob("*.json"))) == len(data.dialogues or [])
    assert (next((cache / "stores").iterdir()) / "store.json").is_file()
    # A new recogniser resumes from the caches: not a single request.
    before = len(chat_server.requests)
    again = make(chat_server, tmp_path, prompt="prc", retrieve=2, data_root=str(mini_data_root))
    assert [p.label for p in again.predict(data.inputs())] == [p.label for p in preds]
    assert len(chat_server.requests) == before


def test_demonstrations_never_include_the_query_itself(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    from emoscope.retrieval import DemonstrationStore

    store = DemonstrationStore()
    store.add_texts(
        ["I swear I did not do it!", "I swear I did not do it!", "Lovely weather today."],
        ["fear", "anger", "joy"],
        source="mine",
        speakers=["Ross", "Ross", "Monica"],
        dialogue_ids=["d1", "d2", "d1"],
    )
    store.save(tmp_path / "store")
    rec = make(chat_server, tmp_path, prompt="few-shot", retrieve=2, store=str(tmp_path / "store"))
    dialogue = Dialogue(
        [
            Utterance("Lovely weather today.", "Monica"),
            Utterance("I swear I did not do it!", "Ross"),
        ],
        id="d1",
    )
    demos = rec.demonstrations(flatten_inputs([dialogue]))
    # Monica's own line is not shown to her; Ross's line from dialogue d2 may be, his own not.
    assert [d.text for d in demos[0]] == ["I swear I did not do it!"] * 2
    assert [(d.text, d.label) for d in demos[1]] == [
        ("I swear I did not do it!", "anger"),
        ("Lovely weather today.", "joy"),
    ]


def test_parse_failures_are_counted_not_raised(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script = lambda req, n: Reply(body=completion("Hmm, hard to say."))
    data = load_dataset_from_dialogues()
    rec = make(chat_server, tmp_path, prompt="zero-shot")
    result = evaluate(rec, data, progress=False)
    assert result.parse_failures == result.n == 3
    preds = rec.predict(data.inputs())
    for p in preds:
        assert p.label == "neutral" and p.cues["parse_failed"] is True
        assert list(p.probs.values()) == pytest.approx([1 / 7] * 7)
        assert p.confidence == pytest.approx(1 / 7)


def load_dataset_from_dialogues() -> Any:
    from emoscope.datasets.base import Dataset, Example

    d = Dialogue(
        [Utterance("I am so happy", "A"), Utterance("I hate this", "B"), Utterance("ok", "A")],
        id="x",
    )
    gold = ["joy", "anger", "neutral"]
    examples = [
        Example(u.text, (g,), dialogue=d, index=i)
        for i, (u, g) in enumerate(zip(d, gold, strict=True))
    ]
    from emoscope.labels import get_taxonomy

    return Dataset("toy", "test", examples, get_taxonomy("meld"), [d])


def test_scripted_labels_score_perfectly(chat_server: ChatServer, tmp_path: Path) -> None:
    result = evaluate(
        make(chat_server, tmp_path, prompt="zero-shot"),
        load_dataset_from_dialogues(),
        progress=False,
    )
    assert result.parse_failures == 0
    assert result.classification is not None
    assert result.classification["accuracy"] == 1.0


def test_verbalised_confidence_shapes_the_distribution(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    answers = iter(
        [
            "<answer>joy</answer><confidence>0.7</confidence>",
            "<answer>anger</answer><confidence>5%</confidence>",
        ]
    )
    chat_server.script = lambda req, n: Reply(body=completion(next(answers)))
    rec = make(chat_server, tmp_path, prompt="zero-shot", confidence=True, batch_size=1)
    first, second = rec.predict(["yay", "grr"])
    assert first.label == "joy" and first.confidence == pytest.approx(0.7)
    assert first.probs["joy"] == pytest.approx(0.7)
    assert first.probs["sadness"] == pytest.approx(0.05)
    assert sum(first.probs.values()) == pytest.approx(1.0)
    # A confidence below 1/K still leaves the named label on top (tied at 1/K).
    assert second.label == "anger" and second.confidence == pytest.approx(0.05)
    assert second.probs["anger"] == pytest.approx(1 / 7)
    user = chat_server.requests[0]["messages"][1]["content"]
    assert "<confidence>" in user and "<answer>" in user
    assert chat_server.requests[0]["max_tokens"] == 96


def test_multi_label_answers(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script = lambda req, n: Reply(body=completion("gratitude, joy"))
    rec = make(chat_server, tmp_path, prompt="zero-shot", taxonomy="goemotions")
    (p,) = rec.predict(["Thanks so much, you made my day!"])
    assert p.multi_label and p.labels == ("gratitude", "joy")
    assert p.probs["gratitude"] == p.probs["joy"] == 1.0 and p.probs["anger"] == 0.0
    assert (
        "### The text, with the conversation" in chat_server.requests[0]["messages"][0]["content"]
    )


def test_rationale_is_kept(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script = lambda req, n: Reply(
        body=completion("<rationale>She shouts.</rationale>\n<answer>anger</answer>")
    )
    (p,) = make(chat_server, tmp_path, prompt="zero-shot", rationale=True).predict(["Get out!"])
    assert p.rationale == "She shouts." and p.label == "anger"
    assert json.loads(json.dumps(p.to_dict()))["cues"]["answer"].startswith("<rationale>")


def test_configuration_errors(chat_server: ChatServer, tmp_path: Path) -> None:
    with pytest.raises(EmoscopeError, match="needs a model"):
        LLMRecognizer(backend="openai")
    with pytest.raises(EmoscopeError, match="zero-shot prompt shows no demonstrations"):
        make(chat_server, tmp_path, prompt="zero-shot", retrieve=3)
    with pytest.raises(EmoscopeError, match="few-shot prompt needs demonstrations"):
        make(chat_server, tmp_path, prompt="few-shot", retrieve=0)
    with pytest.raises(EmoscopeError, match="unknown prompt variant 'cot'"):
        make(chat_server, tmp_path, prompt="cot")
    with pytest.raises(EmoscopeError, match="unknown LLM backend 'tgi'"):
        LLMRecognizer(backend="tgi", model="m")
    with pytest.raises(ValueError, match="unknown taxonomy"):
        make(chat_server, tmp_path, prompt="zero-shot", taxonomy="colours")
    rec = make(chat_server, tmp_path, prompt="few-shot", retrieve=1, taxonomy="plutchik")
    with pytest.raises(EmoscopeError, match="no demonstration store given"):
        rec.predict(["hello"])


def test_environment_configuration_and_registry(
    chat_server: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOSCOPE_LLM_BACKEND", "openai")
    monkeypatch.setenv("EMOSCOPE_LLM_MODEL", "env-model")
    monkeypatch.setenv("EMOSCOPE_LLM_PROMPT", "zero-shot")
    monkeypatch.setenv("EMOSCOPE_LLM_TAXONOMY", "emorynlp")
    monkeypatch.setenv("EMOSCOPE_LLM_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("EMOSCOPE_OPENAI_BASE_URL", chat_server.url)
    rec = load_recognizer("llm")
    assert isinstance(rec, LLMRecognizer)
    assert (rec.name, rec.model, rec.variant, rec.taxonomy.name, rec.k) == (
        "llm-zero-shot-env-model",
        "env-model",
        "zero-shot",
        "emorynlp",
        0,
    )
    chat_server.script = lambda req, n: Reply(body=completion("calm"))
    assert rec.predict(["all good"])[0].label == "peaceful"
    assert (tmp_path / "c" / "responses.sqlite").is_file()
    monkeypatch.setenv("EMOSCOPE_LLM_RETRIEVE", "three")
    with pytest.raises(EmoscopeError, match="EMOSCOPE_LLM_RETRIEVE='three' is not an integer"):
        load_recognizer("llm")
    dotted = load_recognizer(
        "emoscope.recognizers.llm:LLMRecognizer", prompt="zero-shot", retrieve=0, cache=False
    )
    assert isinstance(dotted, LLMRecognizer) and dotted.cache_dir is None


def test_registry_entry_converts_command_line_strings(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    # What 'emoscope eval --recognizer llm --retrieve 3 ...' hands over: every value a string.
    rec = load_recognizer(
        "llm",
        backend="openai",
        model="scripted-llm",
        base_url=chat_server.url,
        prompt="prc",
        retrieve="3",
        cache="false",
        confidence="yes",
        temperature="0",
        batch_size="2",
        extra_body='{"top_p": 1}',
    )
    assert isinstance(rec, LLMRecognizer)
    assert (rec.variant, rec.k, rec.cache_dir, rec.batch_size, rec.temperature) == (
        "prc",
        3,
        None,
        2,
        0.0,
    )
    assert rec.builder.confidence is True
    assert load_recognizer("llm", model="m", backend="openai", retrieve=2, prompt="few-shot").k == 2
    base = {"backend": "openai", "model": "m", "base_url": chat_server.url}
    with pytest.raises(EmoscopeError, match="--retrieve: expected an integer, got 'three'"):
        load_recognizer("llm", retrieve="three", **base)
    with pytest.raises(EmoscopeError, match="--cache: expected true or false, got 'maybe'"):
        load_recognizer("llm", cache="maybe", **base)
    with pytest.raises(EmoscopeError, match="--extra-body: expected a JSON object"):
        load_recognizer("llm", extra_body="[1]", **base)
    unknown = r"unknown llm recogniser option\(s\): colour; expected"
    with pytest.raises(EmoscopeError, match=unknown):
        load_recognizer("llm", colour="red", **base)
