"""ASGI middleware of the service: body size limit, request ids and log, and :class:`ApiGuard`
(content type, API keys, per-client rate limit)."""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import HTTPException

from emoscope.serve.config import ServeConfig

__all__ = ["ApiGuard", "BodySizeLimit", "RequestLog"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("emoscope.serve")


class BodySizeLimit:
    """ASGI middleware answering 413 to request bodies larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before the body is read; a body
    sent without one (chunked) is counted as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: str) -> str:
        return (
            f"request body is {size} bytes; the limit is {self.max_bytes:,} bytes (max_body_bytes)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._reject(send, self._message(f"{declared:,}"))
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing unchanged and
                    # becomes a 413 response in Starlette's exception middleware.
                    raise HTTPException(413, self._message(f"more than {self.max_bytes:,}"))
            return message

        await self.app(scope, counting_receive, send)

    @staticmethod
    async def _reject(send: Send, message: str) -> None:
        await _send_json(send, 413, {"detail": message}, [(b"connection", b"close")])


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestLog:
    """ASGI middleware giving every request an id and logging one line per request.

    The id is the client's ``X-Request-ID`` when it is 1-128 characters of ``[A-Za-z0-9._:-]``
    (anything else is replaced, so that a client cannot forge log lines), else a new random
    one; it is sent back in the ``X-Request-ID`` response header. The line holds the id, the
    client address, method, path, status and duration: never headers or bodies.

    An unexpected error (a failing model) is logged with its traceback and answered here with a
    JSON 500 naming the request id. Left to the server, it would close the connection after the
    response, and a client reusing that keep-alive connection would see it reset.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status: int | None = None  # set when the response starts
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status is not None:  # too late for an answer: let the server close the connection
                raise
            log.exception("%s unexpected error", rid)
            detail = (
                f"internal error ({type(exc).__name__}) answering request {rid}; "
                "the server log has the traceback"
            )
            await _send_json(send_with_id, 500, {"detail": detail})
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %s %d %.1fms",
                rid,
                client[0],
                scope.get("method", "-"),
                scope.get("path", "-"),
                500 if status is None else status,
                1000 * (time.perf_counter() - t0),
            )


class ApiGuard:
    """ASGI middleware in front of ``/v1/*``: content type, API keys, per-client rate limit.

    - a request with a body whose ``Content-Type`` is not JSON gets 415;
    - with keys configured, a request without ``Authorization: Bearer KEY`` naming one of them
      gets 401 (keys are compared with :func:`hmac.compare_digest`, each one, so the time taken
      does not tell which key nearly matched);
    - with ``rate_limit`` > 0, each client (its key, else its IP address) has a token bucket of
      ``rate_burst`` tokens refilled at ``rate_limit`` per second; a request finding it empty
      gets 429 with ``Retry-After`` (whole seconds until a token is back).
    """

    max_clients = 10_000  # buckets kept; the longest idle are dropped beyond this

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.keys = [k.encode() for k in config.api_keys]
        self.rate = config.rate_limit
        self.burst = float(config.rate_burst or max(1, math.ceil(self.rate)))
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last time)
        self._lock = threading.Lock()

    def _key_index(self, auth: str | None) -> int | None:
        """Position of the key the ``Authorization`` header names, or None."""
        if not auth or auth[:7].lower() != "bearer ":
            return None
        given = auth[7:].strip().encode("latin-1")
        found = None
        for i, key in enumerate(self.keys):
            if hmac.compare_digest(given, key):
                found = i
        return found

    def _take(self, client: str) -> float:
        """Take a token for ``client``; 0 if granted, else seconds until one is back."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[client] = (tokens, now)  # re-inserted: dict order = least recent first
            while len(self._buckets) > self.max_clients:
                del self._buckets[next(iter(self._buckets))]
            return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ctype = _header(scope, b"content-type")
        if ctype is None and (
            _header(scope, b"content-length") not in (None, "0")
            or _header(scope, b"transfer-encoding") is not None
        ):
            ctype = ""  # a body without a type: FastAPI would not read it as JSON either
        if scope.get("method") in ("POST", "PUT", "PATCH") and ctype is not None:
            media = ctype.split(";")[0].strip().lower() or "(none)"
            if media != "application/json" and not (
                media.startswith("application/") and media.endswith("+json")
            ):
                await _send_json(
                    send,
                    415,
                    {"detail": f"unsupported content type {media!r}; expected application/json"},
                )
                return
        client = (scope.get("client") or ("-", 0))[0]
        if self.keys:
            index = self._key_index(_header(scope, b"authorization"))
            if index is None:
                await _send_json(
                    send,
                    401,
                    {"detail": "missing or wrong API key; send 'Authorization: Bearer KEY'"},
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            client = f"key#{index}"
        if self.rate > 0:
            wait = self._take(client)
            if wait > 0:
                await _send_json(
                    send,
                    429,
                    {
                        "detail": f"rate limit: {self.rate:g} requests per second per client "
                        f"(burst {self.burst:g}; rate_limit, rate_burst)"
                    },
                    [(b"retry-after", str(max(1, math.ceil(wait))).encode())],
                )
                return
        await self.app(scope, receive, send)
