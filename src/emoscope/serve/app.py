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
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from emoscope._io import write_text
from emoscope._version import __version__
from emoscope._views import route
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.labels import TAXONOMIES, Taxonomy, get_taxonomy, map_label
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Recognizer
from emoscope.serve.batching import Batchers
from emoscope.serve.config import ServeConfig
from emoscope.serve.middleware import ApiGuard, BodySizeLimit, RequestLog
from emoscope.serve.schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    DialogueRequest,
    DialogueResponse,
    ErrorOut,
    HealthResponse,
    LabelOut,
    LimitsOut,
    ModelsResponse,
    PredictionOut,
    RecognizerOut,
    RespondRequest,
    RespondResponse,
    TaxonomyOut,
    UtteranceOut,
)

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
                    from emoscope.recognizers.default import default_recognizer_name

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
