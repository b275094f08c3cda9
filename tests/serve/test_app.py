"""The HTTP service: endpoints, limits, OpenAPI schema, the thread bound, the CLI command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import emoscope
from emoscope import Dialogue, EmotionPrediction, Utterance, cli, load_recognizer
from emoscope.errors import EmoscopeError
from emoscope.prediction import PREDICTION_SCHEMA
from emoscope.recognizers import encoder
from emoscope.serve import ServeConfig, create_app, openapi_json
from net_helpers import unused_port
from scale_helpers import (
    ContextRecognizer,
    GatedRecognizer,
    SlowRecognizer,
    running_server,
    tiny_encoder_folder,
    use_as_default_model,
)

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.json"
TEXTS = ["I love this so much!", "This is awful and I am furious.", "What? Really?"]
DIALOGUE = {
    "id": "d1",
    "utterances": [
        {"speaker": "Ann", "text": "thanks, I love it"},
        {"speaker": "Bo", "text": "wow, that is gross"},
        {"speaker": "Ann", "text": "I am scared now"},
    ],
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(ServeConfig(recognizer="lexicon", max_batch=4, max_text_chars=100))
    with TestClient(app) as c:  # runs the lifespan: the recogniser is loaded once, here
        yield c


def _limit_msg(resp: httpx.Response) -> str:
    detail = resp.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(d["msg"] for d in detail)


# ------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------


def test_analyze_one_and_many_texts_match_the_recogniser(client: TestClient) -> None:
    lexicon = load_recognizer("lexicon")
    one = client.post("/v1/analyze", json={"text": TEXTS[0]})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["recognizer"] == "lexicon" and body["taxonomy"] == "goemotions"
    [pred] = body["predictions"]
    assert pred == json.loads(json.dumps(lexicon.predict([TEXTS[0]])[0].to_dict()))
    assert set(pred) <= set(PREDICTION_SCHEMA["properties"])
    assert set(PREDICTION_SCHEMA["required"]) <= set(pred)
    assert "rationale" not in pred  # keys to_dict leaves out stay out
    assert EmotionPrediction.from_dict(pred).label == pred["label"]

    many = client.post("/v1/analyze", json={"texts": TEXTS})
    assert many.status_code == 200
    got = [EmotionPrediction.from_dict(p) for p in many.json()["predictions"]]
    want = lexicon.predict(TEXTS)
    assert [p.label for p in got] == [p.label for p in want]
    assert [p.probs for p in got] == [p.probs for p in want]


def test_analyze_taxonomy_mapping_and_bad_requests(client: TestClient) -> None:
    r = client.post("/v1/analyze", json={"texts": TEXTS, "taxonomy": "ekman"})
    assert r.status_code == 200
    assert r.json()["taxonomy"] == "ekman"
    for p in r.json()["predictions"]:
        assert set(p["probs"]) == {
            "anger",
            "disgust",
            "fear",
            "joy",
            "sadness",
            "surprise",
            "neutral",
        }
        assert abs(sum(p["probs"].values()) - 1) < 1e-6
    r = client.post("/v1/analyze", json={"texts": TEXTS, "taxonomy": "colours"})
    assert r.status_code == 422 and "unknown taxonomy 'colours'" in _limit_msg(r)
    for bad in ({}, {"text": "a", "texts": ["b"]}, {"texts": []}, {"text": 3}, {"txt": "a"}):
        r = client.post("/v1/analyze", json=bad)
        assert r.status_code == 422, bad
    r = client.post("/v1/analyze", json={"text": "a", "texts": ["b"]})
    assert "exactly one of 'text'" in _limit_msg(r)
    r = client.post("/v1/analyze", json={"texts": ["fine", "   "]})
    assert r.status_code == 422 and "texts[1] is empty" in _limit_msg(r)
    r = client.post(
        "/v1/analyze", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_dialogue_predicts_every_utterance_in_context() -> None:
    rec = ContextRecognizer()
    with TestClient(create_app(recognizer=rec)) as c:
        r = c.post("/v1/dialogue", json=DIALOGUE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "d1" and body["speakers"] == ["Ann", "Bo"]
    assert body["recognizer"] == "context-keyword"
    utts = body["utterances"]
    assert [u["index"] for u in utts] == [0, 1, 2]
    assert [u["speaker"] for u in utts] == ["Ann", "Bo", "Ann"]
    # The recogniser saw one dialogue: each utterance with the turns before it as context.
    assert [u["prediction"]["cues"]["context"] for u in utts] == [0, 1, 2]
    assert [u["prediction"]["label"] for u in utts] == ["gratitude", "surprise", "fear"]
    d = Dialogue([Utterance(u["text"], u["speaker"]) for u in DIALOGUE["utterances"]])
    assert [u["prediction"]["probs"] for u in utts] == [p.probs for p in rec.predict([d])]


def test_dialogue_with_lexicon_and_taxonomy(client: TestClient) -> None:
    r = client.post("/v1/dialogue", json={**DIALOGUE, "taxonomy": "meld"})
    assert r.status_code == 200
    assert {u["prediction"]["taxonomy"] for u in r.json()["utterances"]} == {"meld"}
    r = client.post("/v1/dialogue", json={"utterances": []})
    assert r.status_code == 422
    r = client.post("/v1/dialogue", json={"utterances": [{"speaker": "A"}]})
    assert r.status_code == 422


def test_models_and_health(client: TestClient) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    m = r.json()
    assert m["recognizer"]["name"] == "lexicon"
    assert len(m["recognizer"]["labels"]) == 28
    assert m["default_taxonomy"] == "goemotions"
    assert m["limits"]["max_batch"] == 4 and m["limits"]["max_text_chars"] == 100
    tax = {t["name"]: t for t in m["taxonomies"]}
    assert set(tax) == {"goemotions", "ekman", "meld", "emorynlp", "plutchik"}
    groups = {lab["name"]: lab["group"] for lab in tax["goemotions"]["labels"]}
    assert groups["annoyance"] == "anger" and groups["gratitude"] == "joy"
    assert all(len(lab["vad"]) == 3 for t in tax.values() for lab in t["labels"])
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    assert h.json()["recognizer"] == "lexicon"


def test_health_says_loading_before_start_up() -> None:
    app = create_app(ServeConfig(recognizer="lexicon"))
    c = TestClient(app)  # not entered: the lifespan (which loads the model) has not run
    r = c.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "loading"


def test_page_and_static_files(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'src="/static/app.js"' in r.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css"), ("favicon.svg", "svg")):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200 and kind in s.headers["content-type"], name
    assert "http" not in client.get("/static/app.js").text.replace("http://www.w3.org", "")


# ------------------------------------------------------------------------------------------
# Limits
# ------------------------------------------------------------------------------------------


def test_batch_and_text_length_limits_are_422_naming_the_limit(client: TestClient) -> None:
    r = client.post("/v1/analyze", json={"texts": ["a"] * 5})
    assert r.status_code == 422
    assert _limit_msg(r) == "5 texts; the limit is 4 texts per request (max_batch)"
    assert r.json()["detail"][0]["loc"] == ["body", "texts"]
    r = client.post("/v1/analyze", json={"texts": ["ok", "x" * 101]})
    assert r.status_code == 422
    assert "texts[1] has 101 characters; the limit is 100" in _limit_msg(r)
    assert "max_text_chars" in _limit_msg(r)
    r = client.post("/v1/analyze", json={"text": "x" * 101})
    assert r.status_code == 422 and "text has 101 characters" in _limit_msg(r)
    assert r.json()["detail"][0]["loc"] == ["body", "text"]
    r = client.post("/v1/dialogue", json={"utterances": [{"text": "ok"}, {"text": "y" * 200}]})
    assert r.status_code == 422 and "utterances[1] has 200 characters" in _limit_msg(r)


def test_utterance_limit() -> None:
    app = create_app(ServeConfig(max_utterances=2), recognizer=load_recognizer("lexicon"))
    with TestClient(app) as c:
        r = c.post("/v1/dialogue", json=DIALOGUE)
        assert r.status_code == 422
        assert "3 utterances; the limit is 2 utterances per dialogue (max_utterances)" in (
            _limit_msg(r)
        )
        assert c.post("/v1/dialogue", json={"utterances": DIALOGUE["utterances"][:2]}).is_success


def test_body_size_limit_is_413_with_and_without_content_length() -> None:
    app = create_app(ServeConfig(max_body_bytes=500), recognizer=load_recognizer("lexicon"))
    with TestClient(app) as c:
        big = json.dumps({"texts": ["word " * 30] * 4}).encode()
        assert len(big) > 500
        r = c.post("/v1/analyze", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["detail"] == (
            f"request body is {len(big):,} bytes; the limit is 500 bytes (max_body_bytes)"
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it comes
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        r = c.post("/v1/analyze", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
        assert "more than 500" in r.json()["detail"]
        small = {"texts": ["fine"]}
        assert c.post("/v1/analyze", json=small).status_code == 200


# ------------------------------------------------------------------------------------------
# Concurrency: predictions run in a bounded set of threads, never on the event loop
# ------------------------------------------------------------------------------------------


def test_predictions_run_off_the_event_loop_with_bounded_concurrency() -> None:
    rec = SlowRecognizer()
    app = create_app(ServeConfig(concurrency=2, max_queue=16, batch_wait_ms=0), recognizer=rec)
    with running_server(app) as url:
        calls_before = rec.calls
        with httpx.Client(base_url=url, timeout=30) as c, ThreadPoolExecutor(8) as pool:
            start = time.monotonic()
            futures = [
                pool.submit(c.post, "/v1/analyze", json={"text": f"wow {i}"}) for i in range(8)
            ]
            time.sleep(0.05)
            # The event loop stays free while predictions run: health answers at once.
            t0 = time.monotonic()
            assert c.get("/healthz").status_code == 200
            health_latency = time.monotonic() - t0
            responses = [f.result() for f in futures]
            elapsed = time.monotonic() - start
    assert all(r.status_code == 200 for r in responses)
    assert rec.calls - calls_before == 8
    assert rec.max_active == 2  # never more than `concurrency` predictions at once
    assert health_latency < rec.delay
    # 8 calls of 0.15 s two at a time take at least 4 rounds.
    assert elapsed >= 4 * rec.delay * 0.9


def test_requests_beyond_the_queue_get_503() -> None:
    rec = GatedRecognizer()
    app = create_app(ServeConfig(concurrency=1, max_queue=0), recognizer=rec)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        holder = threading.Thread(
            target=c.post, args=("/v1/analyze",), kwargs={"json": {"text": "a"}}
        )
        holder.start()
        assert rec.entered.wait(10)
        r = c.post("/v1/analyze", json={"text": "b"})
        rec.gate.set()
        holder.join(10)
        assert r.status_code == 503
        assert "concurrency + max_queue = 1" in r.json()["detail"]
        assert r.headers["retry-after"] == "1"
        assert c.post("/v1/analyze", json={"text": "c"}).status_code == 200


# ------------------------------------------------------------------------------------------
# OpenAPI schema and configuration
# ------------------------------------------------------------------------------------------


def test_openapi_schema_is_published_and_docs_copy_is_current(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    assert {"/v1/analyze", "/v1/dialogue", "/v1/models", "/healthz"} <= set(served["paths"])
    assert "413" in served["paths"]["/v1/analyze"]["post"]["responses"]
    assert OPENAPI.is_file(), "docs/openapi.json is missing: emoscope serve --write-openapi"
    assert OPENAPI.read_text(encoding="utf-8") == openapi_json(), (
        "docs/openapi.json is out of date; regenerate it with "
        "'emoscope serve --write-openapi docs/openapi.json'"
    )
    # The schema does not depend on the limits or on the recogniser being loaded.
    assert json.loads(openapi_json()) == served


def test_bad_configuration_is_an_emoscope_error() -> None:
    with pytest.raises(EmoscopeError, match="unknown taxonomy"):
        ServeConfig(taxonomy="colours")
    with pytest.raises(EmoscopeError, match="max_batch must be at least 1"):
        ServeConfig(max_batch=0)


# ------------------------------------------------------------------------------------------
# The CLI command
# ------------------------------------------------------------------------------------------


def test_cli_write_openapi_and_bad_recogniser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "openapi.json"
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--write-openapi", str(out)])
    assert exc.value.code in (0, None)
    assert out.read_text(encoding="utf-8") == openapi_json()
    assert f"wrote {out}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--recognizer", "nope", "--port", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.strip().startswith("error: unknown recogniser 'nope'")
    assert len(err.strip().splitlines()) == 1


def test_cli_serve_runs_a_server(tmp_path: Path) -> None:
    port = unused_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    cmd = [sys.executable, "-m", "emoscope.cli", "serve", "--port", str(port),
           "--recognizer", "lexicon", "--max-batch", "2", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "emoscope serve did not start"
            time.sleep(0.1)
        r = httpx.post(url + "/v1/analyze", json={"texts": ["a", "b", "c"]})
        assert r.status_code == 422 and "(max_batch)" in r.text
        assert httpx.get(url + "/v1/models").json()["limits"]["max_batch"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------
# The default model: a tiny, untrained encoder model read through the real loading path
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_model_folder(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_encoder_folder(tiny_base_model, tmp_path_factory.mktemp("default-model"))


@pytest.fixture
def default_model(default_model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_as_default_model(monkeypatch, default_model_folder)
    return default_model_folder


def test_default_model_is_loaded_once_at_start_up_and_shared(
    default_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_load = encoder._load_model

    def counting_load(folder: Path) -> Any:
        loads.append(folder)
        return real_load(folder)

    monkeypatch.setattr(encoder, "_load_model", counting_load)
    assert cli.default_recognizer_name() == "default"
    app = create_app(ServeConfig(concurrency=2))  # no recogniser named: the default model
    assert loads == []  # building the app (e.g. for the OpenAPI schema) loads nothing
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert loads == [default_model]  # loaded by the start-up, before the first request
        with ThreadPoolExecutor(6) as pool:
            rs = list(pool.map(lambda t: c.post("/v1/analyze", json={"text": t}), TEXTS * 4))
        d = c.post("/v1/dialogue", json=DIALOGUE)
        m = c.get("/v1/models").json()
    assert loads == [default_model]  # 12 concurrent requests and a dialogue: still one load
    assert all(r.status_code == 200 for r in rs) and d.status_code == 200
    assert m["recognizer"]["name"] == "default" and m["default_taxonomy"] == "meld"
    want = emoscope.load().predict(TEXTS)
    for r, p in zip(rs[:3], want, strict=True):
        [got] = r.json()["predictions"]
        # the default backend may be bfloat16, whose results move with the batch they are in
        assert got["probs"] == pytest.approx(p.probs, abs=2e-3)
        assert got["vad"] == pytest.approx(list(p.vad or []), abs=2e-3)


def test_cli_serve_uses_the_default_model_unless_it_is_missing(
    default_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uvicorn

    served: list[Any] = []
    # uvicorn itself is exercised by test_cli_serve_runs_a_server; here we keep its app.
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--port", "0", "--max-batch", "3"])
    assert exc.value.code in (0, None)
    assert "not installed" not in capsys.readouterr().err
    [(app, kw)] = served
    assert kw["workers"] == 1 and kw["port"] == 0
    with TestClient(app) as c:
        m = c.get("/v1/models").json()
        assert m["recognizer"]["name"] == "default" and m["limits"]["max_batch"] == 3
        r = c.post("/v1/dialogue", json=DIALOGUE)
        assert r.status_code == 200 and r.json()["taxonomy"] == "meld"

    use_as_default_model(monkeypatch, tmp_path / "no-model-here")
    with pytest.raises(SystemExit):
        cli.main(["serve", "--port", "0"])
    err = capsys.readouterr().err
    assert "the default model is not installed; using the 'lexicon' recogniser" in err
    with TestClient(served[-1][0]) as c:
        assert c.get("/v1/models").json()["recognizer"]["name"] == "lexicon"


def test_serves_an_encoder_model(default_model_folder: Path) -> None:
    from emoscope.recognizers.encoder import EncoderRecognizer

    folder = default_model_folder
    rec = EncoderRecognizer(folder)
    with TestClient(create_app(ServeConfig(concurrency=2), recognizer=rec)) as c:
        r = c.post("/v1/dialogue", json=DIALOGUE)
        assert r.status_code == 200, r.text
        preds = [u["prediction"] for u in r.json()["utterances"]]
        d = Dialogue([Utterance(u["text"], u["speaker"]) for u in DIALOGUE["utterances"]])
        want = rec.predict([d])
        for got, p in zip(preds, want, strict=True):
            assert got["probs"] == pytest.approx(p.probs)
        assert all(p["taxonomy"] == "meld" and len(p["vad"]) == 3 for p in preds)
        # The model's own goemotions head answers (multi-label), not a mapping of its meld head.
        r = c.post("/v1/analyze", json={"texts": TEXTS, "taxonomy": "goemotions"})
        assert r.status_code == 200
        go = EncoderRecognizer(folder, taxonomy="goemotions").predict(TEXTS)
        assert all(p["multi_label"] for p in r.json()["predictions"])
        for got, p in zip(r.json()["predictions"], go, strict=True):
            assert got["probs"] == pytest.approx(p.probs) and got["labels"] == list(p.labels)
        # ekman has no head: the meld distribution is mapped.
        r = c.post("/v1/analyze", json={"texts": TEXTS, "taxonomy": "ekman"})
        assert {p["taxonomy"] for p in r.json()["predictions"]} == {"ekman"}
        with ThreadPoolExecutor(4) as pool:  # concurrent calls into one shared torch model
            rs = list(pool.map(lambda t: c.post("/v1/analyze", json={"text": t}), TEXTS * 3))
        assert all(x.status_code == 200 for x in rs)
        a, b = rs[0].json()["predictions"][0], rs[3].json()["predictions"][0]
        # bf16 sums depend on how requests were micro-batched together: equal within tolerance.
        close = {"probs", "vad", "confidence"}
        diff = {k: (a[k], b[k]) for k in a if k not in close and a[k] != b[k]}
        assert not diff, diff
        for k in close & a.keys():
            assert a[k] == pytest.approx(b[k], abs=2e-3), k
        assert c.get("/v1/models").json()["recognizer"]["name"] == "default"
