"""The emoscope HTTP service: a FastAPI app over one shared :class:`~emoscope.Recognizer`.

Endpoints (the OpenAPI schema is served at ``/openapi.json`` and kept in ``docs/openapi.json``):

- ``POST /v1/analyze``: one text (``{"text": ...}``) or many (``{"texts": [...]}``) → one
  prediction per text, in :meth:`emoscope.EmotionPrediction.to_dict`'s shape.
- ``POST /v1/dialogue``: a conversation (``{"utterances": [{"speaker", "text"}, ...]}``) → one
  prediction per utterance, each read in its preceding context.
- ``GET /v1/models``: the served recogniser, the taxonomies (labels with VAD coordinates) and
  the limits in force.
- ``GET /healthz``: liveness and readiness.
- ``GET /``: a web page that analyses a pasted or uploaded dialogue (``serve/static``).

The recogniser is loaded once, at start-up, and shared by all requests. Predictions run in worker
threads (never on the event loop) behind a capacity limiter of ``concurrency`` threads; requests
beyond ``concurrency + max_queue`` are refused with 503 instead of piling up.

Limits: a request body over ``max_body_bytes`` gets 413; more texts than ``max_batch``, more
utterances than ``max_utterances`` or a text over ``max_text_chars`` characters get 422. Every
limit error names the limit (its ``emoscope serve`` option) and its value. A body that is not
JSON in UTF-8 (or is nested too deeply, or holds a lone surrogate) gets 422; a content type other
than JSON gets 415.

Exposure (all off by default): API keys (``Authorization: Bearer KEY`` on every ``/v1/*``
request, 401 otherwise; ``/healthz`` and the page stay open), a CORS allow-list, a per-client
token-bucket rate limit (429 with ``Retry-After``) and the ``/docs``/``/redoc`` pages (they load
their scripts from a CDN, so they are off unless asked for; ``/openapi.json`` is always served).
Every request is logged on the ``emoscope.serve`` logger with a request id (the client's
``X-Request-ID`` when it is sane, else a new one), echoed in the ``X-Request-ID`` header; keys
and other headers are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from emoscope import __version__
from emoscope._io import write_text
from emoscope._views import route
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.labels import TAXONOMIES, Taxonomy, get_taxonomy, map_label
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import MAX_TEXT_CHARS, Recognizer, unicode_problem
from emoscope.serve.batching import Batchers

__all__ = [
    "STATIC_DIR",
    "AnalyzeRequest",
    "AnalyzeResponse",
    "DialogueRequest",
    "DialogueResponse",
    "HealthResponse",
    "ModelsResponse",
    "PredictionOut",
    "RespondRequest",
    "RespondResponse",
    "ServeConfig",
    "create_app",
    "openapi_json",
    "write_openapi",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("emoscope.serve")


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the service; each is an ``emoscope serve`` option of the same name.

    Args:
        recognizer: recogniser name or dotted path; ``None`` = the default model if installed,
            else the lexicon (:func:`emoscope.cli.default_recognizer_name`).
        taxonomy: map every prediction into this taxonomy unless a request asks for another.
        max_batch: most texts in one ``/v1/analyze`` request.
        max_utterances: most utterances in one ``/v1/dialogue`` request.
        max_text_chars: most characters in one text or utterance.
        max_body_bytes: largest request body, in bytes.
        concurrency: predictions running at once (worker threads).
        max_queue: requests allowed to wait for a worker thread before 503 is returned.
        api_keys: when not empty, every ``/v1/*`` request needs ``Authorization: Bearer KEY``
            with one of these keys (compared in constant time; never shown or logged).
        cors_origins: origins allowed to call the API from a browser (CORS); empty = CORS off.
        rate_limit: requests per second each client (API key, else IP address) may make to
            ``/v1/*``, refilled continuously; 0 = no limit.
        rate_burst: requests a client may make at once before ``rate_limit`` applies
            (default: ``rate_limit`` rounded up, at least 1).
        docs: serve the ``/docs`` and ``/redoc`` pages (their scripts come from a CDN).
        batch_wait_ms: how long a ``/v1/analyze`` request waits for others to share its
            forward pass (dynamic micro-batching, :mod:`emoscope.serve.batching`); 0 = off.
        batch_max_texts: most texts in one micro-batch.
    """

    recognizer: str | None = None
    taxonomy: str | None = None
    max_batch: int = 64
    max_utterances: int = 256
    max_text_chars: int = MAX_TEXT_CHARS
    max_body_bytes: int = 1_000_000
    concurrency: int = 2
    max_queue: int = 64
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()
    rate_limit: float = 0.0
    rate_burst: int | None = None
    docs: bool = False
    batch_wait_ms: float = 2.0
    batch_max_texts: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_batch", "max_utterances", "max_text_chars", "max_body_bytes", "concurrency",
            "batch_max_texts",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise EmoscopeError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise EmoscopeError(f"batch_wait_ms must be 0 or more, got {self.batch_wait_ms}")
        if self.max_queue < 0:
            raise EmoscopeError(f"max_queue must be 0 or more, got {self.max_queue}")
        if not math.isfinite(self.rate_limit) or self.rate_limit < 0:
            raise EmoscopeError(f"rate_limit must be 0 or more, got {self.rate_limit}")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise EmoscopeError(f"rate_burst must be at least 1, got {self.rate_burst}")
        if any(not k.strip() or any(c.isspace() for c in k) for k in self.api_keys):
            raise EmoscopeError("an API key is empty or contains white space")
        if self.taxonomy is not None:
            _taxonomy(self.taxonomy)


def _taxonomy(name: str) -> Taxonomy:
    try:
        return get_taxonomy(name)
    except ValueError as e:
        raise EmoscopeError(str(e)) from None


# ------------------------------------------------------------------------------------------
# Request and response models
# ------------------------------------------------------------------------------------------


def _valid_unicode(value: str) -> str:
    """Refuse strings that cannot be encoded as UTF-8 (lone surrogates such as ``\\ud800``)."""
    problem = unicode_problem(value)
    if problem:
        raise ValueError(f"{problem}; expected valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]

TaxonomyField = Annotated[
    Text | None,
    Field(
        description="Map the predictions into this taxonomy (goemotions, ekman, meld, emorynlp, "
        "plutchik). Default: the server's taxonomy.",
        examples=["ekman"],
    ),
]


class PredictionOut(BaseModel):
    """One prediction, as :meth:`emoscope.EmotionPrediction.to_dict` writes it."""

    taxonomy: str = Field(description="Name of the label taxonomy.")
    label: str = Field(description="The most probable label.")
    labels: list[str] = Field(description="Labels predicted present, best first.")
    probs: dict[str, float] = Field(description="Probability per label.")
    confidence: float = Field(ge=0, le=1, description="Probability that the top label is right.")
    multi_label: bool = Field(description="Whether probs are independent per-label values.")
    vad: list[float] | None = Field(
        min_length=3,
        max_length=3,
        description="Valence, arousal, dominance, each in [-1, 1]; null when not predicted.",
    )
    rationale: str | None = Field(default=None, description="Free-text reasoning, if any.")
    cues: dict[str, Any] | None = Field(
        default=None,
        description="Extra evidence, if any; 'attributions' holds word attributions "
        "[{word, weight, start, end}] when explain=true.",
    )
    language: str | None = Field(
        default=None, description="ISO 639-1 code of the detected language of the text."
    )
    warnings: list[str] | None = Field(
        default=None,
        description="Why the prediction may be unreliable, each 'key: explanation' "
        "(not-english, no-letters, context-truncated).",
    )

    @classmethod
    def from_prediction(cls, pred: EmotionPrediction) -> PredictionOut:
        """Wrap a prediction; keys that ``to_dict`` leaves out stay unset (and unserialised)."""
        return cls.model_validate(pred.to_dict())


class AnalyzeRequest(BaseModel):
    """Texts to analyse: exactly one of ``text`` and ``texts``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["I love it!", "This is awful."]}]},
    )

    text: Text | None = Field(default=None, description="One text.")
    texts: list[Text] | None = Field(default=None, description="Several texts, analysed apart.")
    taxonomy: TaxonomyField = None

    @model_validator(mode="after")
    def _one_of(self) -> AnalyzeRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) and 'texts' (a list)")
        if self.texts is not None and not self.texts:
            raise ValueError("'texts' is empty; expected at least one text")
        return self

    def items(self) -> list[str]:
        """The texts, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])


class AnalyzeResponse(BaseModel):
    """One prediction per input text, in input order."""

    recognizer: str = Field(description="Name of the recogniser that made the predictions.")
    taxonomy: str = Field(description="Taxonomy of the predictions.")
    predictions: list[PredictionOut]


class UtteranceIn(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    speaker: Text | None = None
    id: Text | None = None


class DialogueRequest(BaseModel):
    """A conversation, oldest turn first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "d1",
                    "utterances": [
                        {"speaker": "Maya", "text": "I got the job!"},
                        {"speaker": "Sam", "text": "Oh. So you're really leaving."},
                    ],
                }
            ]
        },
    )

    id: Text | None = Field(default=None, description="An identifier echoed in the response.")
    utterances: list[UtteranceIn] = Field(min_length=1)
    taxonomy: TaxonomyField = None


class SupportUtteranceIn(UtteranceIn):
    """One turn of a support conversation; a supporter turn may name its strategy."""

    strategy: str | None = Field(default=None, description="ESConv strategy of the turn.")


class RespondRequest(BaseModel):
    """A support conversation whose next supporter turn the LLM writes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "utterances": [
                        {"speaker": "seeker", "text": "I failed my exam and I feel awful."},
                    ],
                    "strategy": "auto",
                }
            ]
        },
    )

    utterances: list[SupportUtteranceIn] = Field(min_length=1)
    strategy: str = Field(
        default="auto",
        description="auto (the planner's choice), llm (the LLM's own by label scoring; hf "
        "backend) or an ESConv strategy name.",
    )
    plugin: bool = Field(default=True, description="Put emoscope's reading in the prompt.")
    seeker: str | None = Field(
        default=None, description="The seeker's speaker name [default: 'seeker', else last]."
    )


class RespondResponse(BaseModel):
    """The reply with the strategy, the emotions and the prompt used."""

    reply: str
    strategy: str | None
    strategy_source: str = Field(
        description="given, planner, llm (the LLM's scored choice) or none (no strategy in the "
        "prompt)."
    )
    strategy_probs: dict[str, float] | None
    plugin: bool
    emotions: dict[str, Any]
    prompt: list[dict[str, str]]
    model: str
    usage: dict[str, int]


class UtteranceOut(BaseModel):
    """An utterance of the request with its prediction."""

    index: int = Field(description="Position in the dialogue (0-based).")
    speaker: str | None
    text: str
    id: str | None = None
    prediction: PredictionOut


class DialogueResponse(BaseModel):
    """One prediction per utterance, in dialogue order."""

    recognizer: str
    taxonomy: str
    id: str | None
    speakers: list[str] = Field(description="Distinct speakers in order of first appearance.")
    utterances: list[UtteranceOut]


class LabelOut(BaseModel):
    """A label of a taxonomy."""

    name: str
    vad: list[float] = Field(description="The label's valence, arousal, dominance in [-1, 1].")
    group: str = Field(description="The Ekman label it maps to (used to colour it).")


class TaxonomyOut(BaseModel):
    """A taxonomy the predictions can be mapped into."""

    name: str
    multi_label: bool
    neutral: str | None
    labels: list[LabelOut]


class RecognizerOut(BaseModel):
    """The served recogniser."""

    name: str
    taxonomy: str = Field(description="Taxonomy of its predictions (before any mapping).")
    labels: list[str]


class LimitsOut(BaseModel):
    """The limits in force (``emoscope serve`` options of the same names)."""

    max_batch: int
    max_utterances: int
    max_text_chars: int
    max_body_bytes: int
    concurrency: int
    max_queue: int


class ModelsResponse(BaseModel):
    """What this server serves."""

    recognizer: RecognizerOut
    default_taxonomy: str = Field(description="Taxonomy of responses when none is requested.")
    taxonomies: list[TaxonomyOut]
    limits: LimitsOut
    version: str


class HealthResponse(BaseModel):
    """Service status."""

    status: str = Field(description="'ok' once the recogniser is loaded.")
    recognizer: str | None
    version: str


class ErrorOut(BaseModel):
    """An error that is not a validation error (413, 503)."""

    detail: str


# ------------------------------------------------------------------------------------------
# The shared service state
# ------------------------------------------------------------------------------------------


class _Busy(Exception):
    pass


class _Service:
    """The loaded recogniser, the thread limiter and the in-flight counter."""

    def __init__(
        self, config: ServeConfig, recognizer: Recognizer | None, supporter: Any = None
    ) -> None:
        self.config = config
        self.recognizer = recognizer
        self.supporter = supporter
        self.limiter = anyio.CapacityLimiter(config.concurrency)
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._warm = False
        self._views: dict[str, Recognizer] = {}
        self.in_flight = 0
        self.batchers = Batchers(config.batch_wait_ms, config.batch_max_texts)

    def load(self) -> None:
        """Load the recogniser (unless given) and run one prediction to warm it up."""
        with self._load_lock:
            if self.recognizer is not None and self._warm:
                return
            rec = self.recognizer
            if rec is None:
                from emoscope.recognizers.base import load_recognizer

                name = self.config.recognizer
                if name is None:
                    from emoscope.cli import default_recognizer_name

                    name = default_recognizer_name()
                rec = load_recognizer(name)
            rec.predict(["warm-up"])  # lazy first-call set-up happens before requests arrive
            self.recognizer, self._warm = rec, True

    def require(self) -> Recognizer:
        if self.recognizer is None:  # only when the app runs without its lifespan
            self.load()
        assert self.recognizer is not None
        return self.recognizer

    def for_taxonomy(self, taxonomy: Taxonomy | None) -> Recognizer:
        """The recogniser answering in ``taxonomy`` (see :func:`emoscope._views.route`)."""
        rec = self.require()
        if taxonomy is None:
            return rec
        if taxonomy.name not in self._views:
            self._views[taxonomy.name] = route(rec, taxonomy)
        return self._views[taxonomy.name]

    def default_taxonomy(self) -> str:
        return self.config.taxonomy or self.require().taxonomy.name

    async def run(self, fn: Callable[[], Any], batched: Callable[[], Any] | None = None) -> Any:
        """Run ``fn`` in a worker thread (or await ``batched``, when given and micro-batching
        is on); refuse when too many requests are waiting."""
        with self._lock:
            if self.in_flight >= self.config.concurrency + self.config.max_queue:
                raise _Busy
            self.in_flight += 1
        try:
            if batched is not None and self.batchers.enabled:
                return await asyncio.wrap_future(batched())
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)
        finally:
            with self._lock:
                self.in_flight -= 1


def _limit_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "limit_exceeded", "loc": ("body", *loc), "msg": message, "input": None}]
    )


def _check_utterances(texts: Sequence[str], config: ServeConfig) -> None:
    """Reject a dialogue with too many utterances, or with an over-long or empty one."""
    if len(texts) > config.max_utterances:
        raise _limit_error(
            ("utterances",),
            f"{len(texts):,} utterances; the limit is {config.max_utterances:,} "
            "utterances per dialogue (max_utterances)",
        )
    _check_texts(texts, "utterances", config.max_text_chars)


def _check_texts(texts: Sequence[str], field: str, max_chars: int, single: bool = False) -> None:
    """Reject over-long and empty texts; ``single`` means the field holds one text."""
    for i, text in enumerate(texts):
        name = field if single else f"{field}[{i}]"
        loc: tuple[str | int, ...] = (field,) if single else (field, i)
        if len(text) > max_chars:
            raise _limit_error(
                loc,
                f"{name} has {len(text):,} characters; the limit is {max_chars:,} "
                "characters per text (max_text_chars)",
            )
        if not text.strip():
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("body", *loc),
                        "msg": f"{name} is empty; expected some text",
                        "input": text,
                    }
                ]
            )


ExplainQuery = Annotated[
    bool,
    Query(
        description="Add word attributions (occlusion) to each prediction's cues.attributions: "
        "[{word, weight, start, end}], weight = drop of the top label's probability without "
        "the word. Costs one extra forward pass per word."
    ),
]


def _predict(rec: Recognizer, inputs: Sequence[str | Dialogue], explain: bool) -> list[Any]:
    if not explain:
        return rec.predict(list(inputs))
    from emoscope.explain import explain as explain_words

    return explain_words(rec, inputs)


def _request_taxonomy(name: str | None) -> Taxonomy | None:
    if name is None:
        return None
    try:
        return get_taxonomy(name)
    except ValueError as e:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "taxonomy"), "msg": str(e), "input": name}]
        ) from None


# ------------------------------------------------------------------------------------------
# Body size limit (pure ASGI, so that it also catches chunked bodies without Content-Length)
# ------------------------------------------------------------------------------------------


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
        body = json.dumps({"detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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
        status = 500
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
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %s %d %.1fms",
                rid,
                client[0],
                scope.get("method", "-"),
                scope.get("path", "-"),
                status,
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


# ------------------------------------------------------------------------------------------
# The app
# ------------------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "The request body is over max_body_bytes."},
    503: {"model": ErrorOut, "description": "Too many requests are waiting (max_queue)."},
}
# The page is same-origin only: no CDN, no inline scripts.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _bytes_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _AsciiJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _taxonomy_out(tax: Taxonomy) -> TaxonomyOut:
    return TaxonomyOut(
        name=tax.name,
        multi_label=tax.multi_label,
        neutral=tax.neutral,
        labels=[
            LabelOut(
                name=lab,
                vad=[float(x) for x in tax.vad_of(lab)],
                group=lab if tax.name == "ekman" else map_label(lab, tax, "ekman"),
            )
            for lab in tax.labels
        ],
    )


def create_app(
    config: ServeConfig | None = None,
    *,
    recognizer: Recognizer | None = None,
    supporter: Any = None,
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        config: limits and the recogniser to load (default :class:`ServeConfig`).
        recognizer: an already built recogniser to serve instead of loading
            ``config.recognizer``.
        supporter: a :class:`~emoscope.support.respond.Supporter` (LLM + emoscope) answering
            ``POST /v1/respond``; without one that endpoint answers 503.

    The recogniser is loaded when the app starts (its lifespan), not here, so building the
    app (e.g. to export the OpenAPI schema) is cheap.
    """
    config = config or ServeConfig()
    service = _Service(config, recognizer, supporter)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(service.load)
        try:
            yield
        finally:
            service.batchers.close()

    app = FastAPI(
        title="emoscope",
        version=__version__,
        summary="Emotion recognition for texts and conversations.",
        description=(
            "Recognise emotions in texts and dialogues. Predictions follow emoscope's "
            "EmotionPrediction schema: a probability per label of a taxonomy, the predicted "
            "labels, a confidence and valence/arousal/dominance on [-1, 1].\n\n"
            "Limits (emoscope serve options): max_batch texts per /v1/analyze request, "
            "max_utterances per /v1/dialogue request, max_text_chars per text (422 when "
            "exceeded); max_body_bytes per request body (413). GET /v1/models lists the "
            "values in force."
        ),
        lifespan=lifespan,
        docs_url="/docs" if config.docs else None,
        redoc_url="/redoc" if config.docs else None,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # As FastAPI's own handler, but the echoed input may hold lone surrogates: escape them.
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: _bytes_text})
        return _AsciiJSON({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400 and isinstance(
            exc.__cause__, UnicodeDecodeError | RecursionError
        ):
            # FastAPI answers 400 when the JSON parser fails other than by a syntax error.
            why = (
                "is not valid UTF-8"
                if isinstance(exc.__cause__, UnicodeDecodeError)
                else "is nested too deeply"
            )
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "json_invalid",
                            "loc": ["body"],
                            "msg": f"the request body {why}; expected JSON text in UTF-8",
                            "input": None,
                        }
                    ]
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(_Busy)
    async def _busy(_: Request, __: Exception) -> JSONResponse:
        limit = config.concurrency + config.max_queue
        return JSONResponse(
            {
                "detail": f"server busy: {limit} requests are already running or waiting; "
                f"the limit is concurrency + max_queue = {limit}"
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(EmoscopeError)
    async def _bad_input(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.post(
        "/v1/analyze",
        response_model=AnalyzeResponse,
        response_model_exclude_unset=True,
        responses=_ERRORS,
        summary="Recognise the emotions of one or more texts",
        tags=["predict"],
    )
    async def analyze(req: AnalyzeRequest, explain: ExplainQuery = False) -> AnalyzeResponse:
        """Predict each text on its own (no context); ``texts`` keeps the input order."""
        texts = req.items()
        field = "text" if req.text is not None else "texts"
        if len(texts) > config.max_batch:
            raise _limit_error(
                ("texts",),
                f"{len(texts):,} texts; the limit is {config.max_batch:,} texts per request "
                "(max_batch)",
            )
        _check_texts(texts, field, config.max_text_chars, single=req.text is not None)
        tax = _request_taxonomy(req.taxonomy or config.taxonomy)
        rec = service.for_taxonomy(tax)
        batched = None
        if not explain:
            batched = lambda: service.batchers.submit(  # noqa: E731
                rec, None, texts, lambda r, batch, _tax: _predict(r, batch, False)
            )
        preds: list[EmotionPrediction] = await service.run(
            lambda: _predict(rec, texts, explain), batched=batched
        )
        return AnalyzeResponse(
            recognizer=rec.name,
            taxonomy=tax.name if tax else rec.taxonomy.name,
            predictions=[PredictionOut.from_prediction(p) for p in preds],
        )

    @app.post(
        "/v1/dialogue",
        response_model=DialogueResponse,
        response_model_exclude_unset=True,
        responses=_ERRORS,
        summary="Recognise the emotion of every utterance of a conversation",
        tags=["predict"],
    )
    async def dialogue(req: DialogueRequest, explain: ExplainQuery = False) -> DialogueResponse:
        """Each utterance is read in the context of the turns before it."""
        _check_utterances([u.text for u in req.utterances], config)
        tax = _request_taxonomy(req.taxonomy or config.taxonomy)
        d = Dialogue([Utterance(u.text, u.speaker, u.id) for u in req.utterances], id=req.id)
        rec = service.for_taxonomy(tax)
        preds: list[EmotionPrediction] = await service.run(lambda: _predict(rec, [d], explain))
        return DialogueResponse(
            recognizer=rec.name,
            taxonomy=tax.name if tax else rec.taxonomy.name,
            id=req.id,
            speakers=d.speakers,
            utterances=[
                UtteranceOut(
                    index=i,
                    speaker=u.speaker,
                    text=u.text,
                    id=u.id,
                    prediction=PredictionOut.from_prediction(p),
                )
                for i, (u, p) in enumerate(zip(d.utterances, preds, strict=True))
            ],
        )

    @app.post(
        "/v1/respond",
        response_model=RespondResponse,
        responses={**_ERRORS, 503: {"model": ErrorOut, "description": "No LLM, or busy."}},
        summary="Write the supporter's next turn of an emotional-support conversation",
        tags=["predict"],
    )
    async def respond(req: RespondRequest) -> RespondResponse:
        """An LLM writes the reply, guided (HEF-style) by emoscope's reading of the seeker."""
        if service.supporter is None:
            raise HTTPException(503, "no LLM is configured: start emoscope serve --respond-model")
        _check_utterances([u.text for u in req.utterances], config)
        d = Dialogue(
            [
                Utterance(
                    u.text, u.speaker, u.id, meta={"strategy": u.strategy} if u.strategy else {}
                )
                for u in req.utterances
            ]
        )
        sup = service.supporter
        out = await service.run(
            lambda: sup.respond(d, strategy=req.strategy, plugin=req.plugin, seeker=req.seeker)
        )
        return RespondResponse(**out.to_dict())

    @app.get("/v1/models", response_model=ModelsResponse, tags=["info"])
    async def models() -> ModelsResponse:
        """The served recogniser, the taxonomies it can answer in, and the limits."""
        rec = service.require()
        return ModelsResponse(
            recognizer=RecognizerOut(
                name=rec.name, taxonomy=rec.taxonomy.name, labels=list(rec.labels)
            ),
            default_taxonomy=service.default_taxonomy(),
            taxonomies=[_taxonomy_out(t) for t in TAXONOMIES.values()],
            limits=LimitsOut(
                **{k: v for k, v in asdict(config).items() if k in LimitsOut.model_fields}
            ),
            version=__version__,
        )

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "Still loading."}},
        tags=["info"],
    )
    async def healthz() -> Any:
        """``ok`` when the recogniser is loaded and requests can be served."""
        rec = service.recognizer
        body = HealthResponse(
            status="ok" if rec is not None else "loading",
            recognizer=None if rec is None else rec.name,
            version=__version__,
        )
        if rec is None:
            return JSONResponse(body.model_dump(), status_code=503)
        return body

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(ApiGuard, config=config)
    if config.cors_origins:  # outside the guard: preflight requests carry no API key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RequestLog)
    return app


def openapi_json(app: FastAPI | None = None) -> str:
    """The OpenAPI schema of the app (default configuration) as stable, indented JSON."""
    schema = (app or create_app()).openapi()
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_openapi(path: str | Path) -> Path:
    """Write the OpenAPI schema of the default app to ``path`` (atomically)."""
    write_text(path, openapi_json())
    return Path(path)
