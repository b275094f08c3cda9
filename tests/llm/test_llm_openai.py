"""The OpenAI-compatible backend against a loopback server speaking the chat protocol."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import ChatServer, Reply, completion

from emoscope.errors import EmoscopeError
from emoscope.llm.base import ResponseCache, load_backend
from emoscope.llm.openai import OpenAIBackend, resolve_base_url
from net_helpers import unused_port

HELLO = [[{"role": "user", "content": "Say hello."}]]


def fixed(text: str) -> Any:
    return lambda req, n: Reply(body=completion(text))


def backend(server: ChatServer, **kwargs: Any) -> tuple[OpenAIBackend, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("backoff", 0.01)
    b = OpenAIBackend("test-model", base_url=server.url, sleep=sleeps.append, **kwargs)
    return b, sleeps


def test_ok_reply_text_usage_and_request(chat_server: ChatServer) -> None:
    chat_server.script = fixed("  joy  ")
    b, _ = backend(chat_server, api_key="sk-test")
    convs = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Feel?"}]]
    (gen,) = b.generate(convs, max_new_tokens=7, temperature=0.0)
    assert gen.text == "joy"
    assert (gen.prompt_tokens, gen.completion_tokens, gen.cached) == (11, 3, False)
    (req,) = chat_server.requests
    assert req["model"] == "test-model"
    assert req["messages"] == convs[0]
    assert req["max_tokens"] == 7 and req["temperature"] == 0.0
    assert chat_server.headers[0]["Authorization"] == "Bearer sk-test"


def test_429_honours_retry_after_then_succeeds(chat_server: ChatServer) -> None:
    def script(req: dict[str, Any], n: int) -> Reply:
        if n == 0:
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"})
        return Reply(body=completion("ok"))

    chat_server.script = script
    b, sleeps = backend(chat_server)
    assert b.generate(HELLO)[0].text == "ok"
    assert sleeps == [2.0]
    assert len(chat_server.requests) == 2


def test_500_then_success_with_jittered_backoff(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: (
        Reply(500, "Internal Server Error") if n < 2 else Reply(body=completion("fine"))
    )
    b, sleeps = backend(chat_server, backoff=0.5, max_backoff=10)
    assert b.generate(HELLO)[0].text == "fine"
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0  # full jitter under base * 2**n


def test_retries_are_bounded(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(503, {"error": {"message": "overloaded"}})
    b, sleeps = backend(chat_server, max_retries=2)
    with pytest.raises(EmoscopeError, match=r"3 attempts.*503.*overloaded"):
        b.generate(HELLO)
    assert len(chat_server.requests) == 3 and len(sleeps) == 2


def test_timeout_is_retried(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(
        body=completion("late" if n else "x"), delay=0.6 if n == 0 else 0
    )
    b, sleeps = backend(chat_server, timeout=0.2)
    assert b.generate(HELLO)[0].text == "late"
    assert len(sleeps) == 1


def test_persistent_timeout_gives_a_clear_error(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(body=completion("x"), delay=0.5)
    b, _ = backend(chat_server, timeout=0.1, max_retries=1)
    with pytest.raises(EmoscopeError, match="timed out"):
        b.generate(HELLO)


def test_malformed_json_after_retries(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(200, "this is {not json")
    b, _ = backend(chat_server, max_retries=1)
    with pytest.raises(EmoscopeError, match="malformed reply"):
        b.generate(HELLO)
    assert len(chat_server.requests) == 2


def test_json_without_choices_is_malformed(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(200, {"object": "chat.completion"})
    b, _ = backend(chat_server, max_retries=0)
    with pytest.raises(EmoscopeError, match=r"malformed reply.*KeyError"):
        b.generate(HELLO)


def test_401_fails_at_once_with_the_server_message(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(401, {"error": {"message": "Invalid API key"}})
    b, sleeps = backend(chat_server, api_key="wrong")
    with pytest.raises(EmoscopeError, match=r"HTTP 401: Invalid API key \(check OPENAI_API_KEY\)"):
        b.generate(HELLO)
    assert len(chat_server.requests) == 1 and sleeps == []


def test_400_with_plain_text_body(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(400, "model not found")
    b, _ = backend(chat_server)
    with pytest.raises(EmoscopeError, match="HTTP 400: model not found"):
        b.generate(HELLO)


def test_cache_hit_makes_no_request_and_survives_a_restart(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    # Requests run concurrently, so the answer is derived from the prompt, not the arrival order.
    chat_server.script = lambda req, n: Reply(
        body=completion(f"answer {req['messages'][0]['content'][1:]}")
    )
    db = tmp_path / "cache.sqlite"
    b, _ = backend(chat_server, cache=db)
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    first = b.generate([*convs, convs[0]])  # a duplicate prompt is asked once
    assert [g.text for g in first] == ["answer 0", "answer 1", "answer 2", "answer 0"]
    assert len(chat_server.requests) == 3
    again = b.generate(convs)
    assert [g.text for g in again] == ["answer 0", "answer 1", "answer 2"]
    assert all(g.cached for g in again)
    assert len(chat_server.requests) == 3
    # A new process (new backend, same cache file) resumes without asking again.
    b2, _ = backend(chat_server, cache=db)
    assert b2.generate(convs[1:2])[0].text == "answer 1"
    assert len(chat_server.requests) == 3
    # Other parameters are another key.
    b2.generate(convs[1:2], max_new_tokens=5)
    assert len(chat_server.requests) == 4
    assert len(ResponseCache(db)) == 4


def test_concurrency_is_bounded(chat_server: ChatServer) -> None:
    chat_server.script = lambda req, n: Reply(
        body=completion(req["messages"][0]["content"]), delay=0.15
    )
    b, _ = backend(chat_server, concurrency=3)
    convs = [[{"role": "user", "content": f"n{i}"}] for i in range(9)]
    start = time.perf_counter()
    out = b.generate(convs)
    elapsed = time.perf_counter() - start
    assert [g.text for g in out] == [f"n{i}" for i in range(9)]  # order kept
    assert chat_server.max_in_flight == 3
    assert elapsed < 9 * 0.15  # actually parallel


def test_connection_refused_is_retried_then_reported() -> None:
    port = unused_port()
    sleeps: list[float] = []
    b = OpenAIBackend(
        "m",
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=2,
        backoff=0.01,
        sleep=sleeps.append,
    )
    with pytest.raises(EmoscopeError, match="connection failed"):
        b.generate(HELLO)
    assert len(sleeps) == 2


def test_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url(None) == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://other:1/v1")
    assert resolve_base_url(None) == "http://other:1/v1"
    monkeypatch.setenv("EMOSCOPE_OPENAI_BASE_URL", "http://localhost:8000/")
    assert resolve_base_url(None) == "http://localhost:8000/v1"
    assert resolve_base_url("http://localhost:11434/v1/") == "http://localhost:11434/v1"
    with pytest.raises(EmoscopeError, match="bad OpenAI base URL"):
        resolve_base_url("localhost:8000")


def test_api_key_from_environment(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    chat_server.script = fixed("hi")
    b = load_backend("openai", "m", base_url=chat_server.url)
    b.generate(HELLO)
    assert chat_server.headers[0]["Authorization"] == "Bearer sk-env"


@pytest.mark.parametrize(
    "bad",
    [[], [[]], [[{"role": "robot", "content": "x"}]], [[{"role": "user", "content": 3}]], "text"],
)
def test_bad_conversations_are_rejected(chat_server: ChatServer, bad: Any) -> None:
    b, _ = backend(chat_server)
    if bad == []:
        assert b.generate(bad) == []
        return
    with pytest.raises(EmoscopeError):
        b.generate(bad)
    assert chat_server.requests == []


def test_unknown_backend_name() -> None:
    with pytest.raises(
        EmoscopeError, match="unknown LLM backend 'vllm'; expected one of: hf, openai"
    ):
        load_backend("vllm", "m")
