"""Dynamic micro-batching: same results as unbatched, errors kept per request, clean shutdown."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from emoscope.errors import EmoscopeError
from emoscope.serve import ServeConfig, create_app
from emoscope.serve.batching import BatcherClosed, MicroBatcher
from scale_helpers import FragileRecognizer, SlowRecognizer, running_server, tiny_encoder_folder

TEXTS = [
    f"text {i} " + "wow " * (i % 5) + ("I love it" if i % 2 else "this is awful") for i in range(24)
]


def _upper(batch: list[str]) -> list[str]:
    return [s.upper() for s in batch]


def test_concurrent_requests_share_calls_and_get_their_own_results() -> None:
    calls: list[int] = []

    def predict(batch: list[str]) -> list[str]:
        calls.append(len(batch))
        time.sleep(0.02)
        return _upper(batch)

    b: MicroBatcher[str, str] = MicroBatcher(predict, max_wait_ms=20, max_texts=8)
    try:
        with ThreadPoolExecutor(16) as pool:
            futs = [
                pool.submit(lambda i=i: b.submit([f"a{i}", f"b{i}"]).result(10)) for i in range(16)
            ]
            got = [f.result() for f in futs]
    finally:
        b.close()
    assert got == [[f"A{i}", f"B{i}"] for i in range(16)]
    assert sum(calls) == 32 and max(calls) <= 8  # never more than max_texts per call
    assert len(calls) < 16  # requests were gathered


def test_a_failing_request_fails_alone() -> None:
    def predict(batch: list[str]) -> list[str]:
        if "bad" in batch:
            raise ValueError("bad input")
        return _upper(batch)

    b: MicroBatcher[str, str] = MicroBatcher(predict, max_wait_ms=50, max_texts=64)
    try:
        futs = [b.submit(["x"]), b.submit(["bad"]), b.submit(["y", "z"])]
        assert futs[0].result(10) == ["X"]
        with pytest.raises(ValueError, match="bad input"):
            futs[1].result(10)
        assert futs[2].result(10) == ["Y", "Z"]
        assert b.batches >= 4  # the batch of three, then each request again on its own
    finally:
        b.close()


def test_close_does_not_hang_and_fails_waiting_requests() -> None:
    gate, entered = threading.Event(), threading.Event()

    def predict(batch: list[str]) -> list[str]:
        entered.set()
        gate.wait(10)
        return _upper(batch)

    b: MicroBatcher[str, str] = MicroBatcher(predict, max_wait_ms=0.0, max_texts=1)
    running = b.submit(["a"])
    assert entered.wait(10)
    waiting = [b.submit(["b"]), b.submit(["c"])]
    t0 = time.monotonic()
    b.close(timeout=0.2)  # the running call is stuck: close still returns
    assert time.monotonic() - t0 < 2
    for f in waiting:
        with pytest.raises(BatcherClosed):
            f.result(1)
    with pytest.raises(BatcherClosed):
        b.submit(["d"]).result(1)
    gate.set()
    assert running.result(10) == ["A"]  # the call that had started still answers


def test_bad_batching_settings() -> None:
    with pytest.raises(EmoscopeError, match="batch_wait_ms must be 0 or more"):
        ServeConfig(batch_wait_ms=-1)
    with pytest.raises(EmoscopeError, match="batch_max_texts must be at least 1"):
        ServeConfig(batch_max_texts=0)


def _post_all(url: str, texts: list[str]) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=60) as c, ThreadPoolExecutor(12) as pool:
        return list(pool.map(lambda t: c.post("/v1/analyze", json={"text": t}), texts))


def test_service_results_are_identical_with_and_without_micro_batching() -> None:
    rec = SlowRecognizer()
    rec.delay = 0.03
    answers = {}
    for wait in (0.0, 10.0):
        app = create_app(ServeConfig(batch_wait_ms=wait, max_queue=64), recognizer=rec)
        with running_server(app) as url:
            before = rec.calls
            rs = _post_all(url, TEXTS)
            answers[wait] = [r.json() for r in rs]
            calls = rec.calls - before
        assert all(r.status_code == 200 for r in rs)
        if wait:
            assert calls < len(TEXTS)  # gathered into fewer forward passes
        else:
            assert calls == len(TEXTS)
    assert answers[0.0] == answers[10.0]


def test_an_error_reaches_only_its_request() -> None:
    app = create_app(ServeConfig(batch_wait_ms=20), recognizer=FragileRecognizer())
    with running_server(app) as url:
        rs = _post_all(url, ["fine", "boom here", "also fine", "great"] * 3)
    codes = [r.status_code for r in rs]
    assert codes == [200, 500, 200, 200] * 3
    err = rs[1]
    assert err.headers["content-type"] == "application/json"
    assert err.json()["detail"].startswith("internal error (RuntimeError) answering request ")
    assert err.headers["x-request-id"] in err.json()["detail"]


def test_a_model_error_keeps_the_connection_open() -> None:
    """A 500 from a failing model leaves the keep-alive connection usable: the server used to
    close it after the answer, so a client's next request on it was reset."""
    app = create_app(ServeConfig(batch_wait_ms=0), recognizer=FragileRecognizer())

    def request(text: str) -> bytes:
        body = json.dumps({"text": text}).encode()
        head = (
            f"POST /v1/analyze HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def response(sock: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b"<closed>"
            if data.endswith(b"<closed>"):
                return data
        head, _, rest = data.partition(b"\r\n\r\n")
        size = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                   .split(b":")[1])  # fmt: skip
        while len(rest) < size:
            rest += sock.recv(65536)
        return head

    with running_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request("boom"))
            first = response(sock)
            sock.sendall(request("fine"))
            second = response(sock)
    assert first.startswith(b"HTTP/1.1 500")
    assert second.startswith(b"HTTP/1.1 200"), second


def test_micro_batched_encoder_matches_unbatched(tiny_base_model: Path, tmp_path: Path) -> None:
    from emoscope.recognizers.encoder import EncoderRecognizer

    rec = EncoderRecognizer(tiny_encoder_folder(tiny_base_model, tmp_path / "m"), backend="torch")
    want = [rec.predict([t])[0] for t in TEXTS]
    with running_server(create_app(ServeConfig(batch_wait_ms=10), recognizer=rec)) as url:
        rs = _post_all(url, TEXTS)
    for r, p in zip(rs, want, strict=True):
        [got] = r.json()["predictions"]
        assert got["label"] == p.label
        assert got["probs"] == pytest.approx(p.probs, abs=1e-5)
