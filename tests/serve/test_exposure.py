"""The service, safe to expose: API keys, CORS, docs, request ids, rate limit, status codes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from emoscope.errors import EmoscopeError
from emoscope.serve import ServeConfig, create_app, read_api_keys

KEY = "s3cret-key-1"


def _client(**options: object) -> TestClient:
    return TestClient(create_app(ServeConfig(recognizer="lexicon", **options)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keyed() -> Iterator[TestClient]:
    with _client(api_keys=(KEY, "other-key")) as c:
        yield c


@pytest.fixture(scope="module")
def plain() -> Iterator[TestClient]:
    with _client() as c:
        yield c


def test_api_keys_guard_v1_but_not_health_or_page(keyed: TestClient) -> None:
    body = {"text": "I love it"}
    r = keyed.post("/v1/analyze", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in r.json()["detail"]
    assert (
        keyed.post("/v1/analyze", json=body, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert keyed.post("/v1/analyze", json=body, headers={"Authorization": KEY}).status_code == 401
    assert keyed.get("/v1/models").status_code == 401
    for key in (KEY, "other-key"):
        ok = keyed.post("/v1/analyze", json=body, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
    assert keyed.get("/v1/models", headers={"authorization": f"bearer {KEY}"}).status_code == 200
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/").status_code == 200
    assert keyed.get("/openapi.json").status_code == 200


def test_keys_are_never_shown_or_logged(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServeConfig(api_keys=(KEY,))
    assert KEY not in repr(config)
    with caplog.at_level(logging.DEBUG):
        keyed.post("/v1/analyze", json={"text": "hi"}, headers={"Authorization": f"Bearer {KEY}"})
        keyed.post(
            "/v1/analyze", json={"text": "hi"}, headers={"Authorization": "Bearer wrong-one"}
        )
    assert caplog.records, "requests are logged"
    assert all(
        KEY not in r.getMessage() and "wrong-one" not in r.getMessage() for r in caplog.records
    )


def test_read_api_keys_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOSCOPE_API_KEYS", "a1, b2  c3")
    f = tmp_path / "keys"
    f.write_text("# comment\n\nd4\na1\n")
    assert read_api_keys(None) == ("a1", "b2", "c3")
    assert read_api_keys(f) == ("a1", "b2", "c3", "d4")
    monkeypatch.delenv("EMOSCOPE_API_KEYS")
    assert read_api_keys(None) == ()
    (tmp_path / "empty").write_text("# none\n")
    with pytest.raises(EmoscopeError, match="no API key"):
        read_api_keys(tmp_path / "empty")
    with pytest.raises(EmoscopeError, match="cannot read"):
        read_api_keys(tmp_path / "missing")
    with pytest.raises(EmoscopeError, match="white space"):
        ServeConfig(api_keys=("a b",))


def test_cors_is_off_by_default_and_follows_the_allow_list(plain: TestClient) -> None:
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    r = plain.options("/v1/analyze", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = plain.post("/v1/analyze", json={"text": "hi"}, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers
    with _client(cors_origins=("https://app.example",), api_keys=(KEY,)) as c:
        r = c.options(
            "/v1/analyze", headers={**pre, "Access-Control-Request-Headers": "authorization"}
        )
        assert r.status_code == 200  # the preflight needs no key
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.options("/v1/analyze", headers={**pre, "Origin": "https://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"
        r = c.post(
            "/v1/analyze",
            json={"text": "hi"},
            headers={"Origin": "https://app.example", "Authorization": f"Bearer {KEY}"},
        )
        assert (
            r.status_code == 200
            and r.headers["access-control-allow-origin"] == "https://app.example"
        )


def test_docs_pages_are_off_by_default_but_the_schema_is_served(plain: TestClient) -> None:
    assert plain.get("/docs").status_code == 404
    assert plain.get("/redoc").status_code == 404
    assert plain.get("/openapi.json").json()["info"]["title"] == "emoscope"
    with _client(docs=True) as c:
        assert c.get("/docs").status_code == 200 and "swagger" in c.get("/docs").text.lower()
        assert c.get("/redoc").status_code == 200


def test_request_id_is_echoed_or_made_and_logged(
    plain: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="emoscope.serve"):
        r = plain.post("/v1/analyze", json={"text": "hi"}, headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        made = plain.get("/healthz").headers["x-request-id"]
        assert len(made) == 32
        forged = plain.get("/healthz", headers={"X-Request-ID": "x\n200 fake"}).headers[
            "x-request-id"
        ]
        assert forged != "x\n200 fake" and len(forged) == 32
        bad = plain.post("/v1/analyze", json={"text": ""})
        assert bad.status_code == 422 and bad.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "emoscope.serve"]
    assert any(ln.startswith("abc-123 ") and "POST /v1/analyze 200" in ln for ln in lines)
    assert any(ln.startswith(made) and "GET /healthz 200" in ln for ln in lines)
    assert any("POST /v1/analyze 422" in ln for ln in lines)


def test_rate_limit_is_a_token_bucket_per_client_with_retry_after() -> None:
    with _client(rate_limit=2.0, rate_burst=3) as c:
        codes = [c.post("/v1/analyze", json={"text": "hi"}).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.post("/v1/analyze", json={"text": "hi"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "rate_limit" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200  # only /v1/* is limited
        time.sleep(0.6)  # 2 tokens a second: one is back
        assert c.post("/v1/analyze", json={"text": "hi"}).status_code == 200
    with _client(rate_limit=1.0, api_keys=("k1", "k2")) as c:  # clients = keys
        h1, h2 = ({"Authorization": f"Bearer {k}"} for k in ("k1", "k2"))
        assert c.get("/v1/models", headers=h1).status_code == 200
        assert c.get("/v1/models", headers=h1).status_code == 429
        assert c.get("/v1/models", headers=h2).status_code == 200
    with _client() as c:  # off by default
        assert all(c.get("/v1/models").status_code == 200 for _ in range(30))
    with pytest.raises(EmoscopeError, match="rate_limit"):
        ServeConfig(rate_limit=-1)


def test_bad_bodies_get_422_and_wrong_content_type_415(plain: TestClient) -> None:
    """Defect 9: these were 400 "There was an error parsing the body" and 422."""
    json_h = {"content-type": "application/json"}
    r = plain.post("/v1/analyze", content=b'{"text": "caf\xe9"}', headers=json_h)
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"][0]["msg"]
    deep = b"[" * 50_000 + b"]" * 50_000
    r = plain.post("/v1/analyze", content=deep, headers=json_h)
    assert r.status_code == 422 and "nested" in r.json()["detail"][0]["msg"]
    r = plain.post("/v1/analyze", content=b'{"text": "hi"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = plain.post("/v1/analyze", data={"text": "hi"})  # a form
    assert r.status_code == 415
    r = plain.post("/v1/analyze", content=b"\x80")  # no content type (found by hypothesis: 500)
    assert r.status_code == 415
    ok = plain.post(
        "/v1/analyze",
        content=b'{"text": "hi"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_lone_surrogate_is_422_naming_the_field(plain: TestClient) -> None:
    """Defect 1 (HTTP): a lone surrogate was a 500 with a plain-text body."""
    h = {"content-type": "application/json"}
    r = plain.post("/v1/analyze", content=b'{"text": "hi \\ud800"}', headers=h)
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "text"] and "surrogate" in err["msg"]
    r = plain.post(
        "/v1/dialogue", content=b'{"utterances": [{"text": "ok", "speaker": "\\udc00"}]}', headers=h
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == [
        "body",
        "utterances",
        0,
        "speaker",
    ]


def test_serve_cli_warns_on_a_public_host_without_keys_and_passes_the_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import uvicorn

    from emoscope import cli

    seen: list[dict[str, object]] = []

    def fake_run(app: object, **kwargs: object) -> None:
        seen.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.delenv("EMOSCOPE_API_KEYS", raising=False)

    def serve(*args: str) -> str:
        with pytest.raises(SystemExit) as e:
            cli.main(["serve", "-r", "lexicon", *args])
        assert e.value.code in (0, None)
        return capsys.readouterr().err

    assert "warning: listening on 0.0.0.0 without API keys" in serve("--host", "0.0.0.0")
    assert "warning" not in serve("--host", "127.0.0.1")
    assert "warning" not in serve("--host", "::1")
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    err = serve("--host", "0.0.0.0", "--api-key-file", str(keys), "--cors-origin", "https://a.b",
                "--rate-limit", "5", "--docs")  # fmt: skip
    assert "warning" not in err and KEY not in err
    config = seen[-1]["app"].state.service.config  # type: ignore[attr-defined]
    assert config.api_keys == (KEY,) and config.cors_origins == ("https://a.b",)
    assert config.rate_limit == 5 and config.docs
    monkeypatch.setenv("EMOSCOPE_API_KEYS", "k1,k2")
    assert "warning" not in serve("--host", "0.0.0.0")
    assert seen[-1]["app"].state.service.config.api_keys == ("k1", "k2")  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as e:
        cli.main(["serve", "-r", "lexicon", "--api-key-file", str(tmp_path / "missing")])
    assert e.value.code == 2
