"""The ``emoscope serve`` command: run the HTTP service and its web page with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from emoscope.cli._common import RecognizerOpt, load_recognizer_or_default
from emoscope.serve.config import API_KEYS_ENV, ServeConfig, read_api_keys

__all__ = ["API_KEYS_ENV", "read_api_keys", "register"]

# The options' defaults are the service's own (one source: ServeConfig).
_DEFAULT = ServeConfig()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8000,
    recognizer: RecognizerOpt = None,
    taxonomy: Annotated[
        str | None,
        typer.Option(
            "--taxonomy",
            "-t",
            help="Answer in this taxonomy unless a request asks for another.",
            show_default=False,
        ),
    ] = None,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most texts per /v1/analyze request.")
    ] = _DEFAULT.max_batch,
    max_utterances: Annotated[
        int,
        typer.Option("--max-utterances", min=1, help="Most utterances per /v1/dialogue request."),
    ] = _DEFAULT.max_utterances,
    max_text_chars: Annotated[
        int | None,
        typer.Option(
            "--max-text-chars",
            min=1,
            help="Most characters per text (default: $EMOSCOPE_MAX_TEXT_CHARS, else 2000).",
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body in bytes.")
    ] = _DEFAULT.max_body_bytes,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Predictions running at once (threads).")
    ] = _DEFAULT.concurrency,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", min=0, help="Requests that may wait for a thread before 503."),
    ] = _DEFAULT.max_queue,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help=f"File of API keys, one per line (also ${API_KEYS_ENV}, comma separated); "
            "then every /v1/* request needs 'Authorization: Bearer KEY'.",
            show_default=False,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Allow browser calls from this origin (repeatable; default: CORS off).",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit", min=0, help="Requests per second per client to /v1/* (0 = no limit)."
        ),
    ] = _DEFAULT.rate_limit,
    rate_burst: Annotated[
        int | None,
        typer.Option(
            "--rate-burst",
            min=1,
            help="Requests a client may make at once (default: --rate-limit rounded up).",
            show_default=False,
        ),
    ] = None,
    docs: Annotated[
        bool,
        typer.Option(
            "--docs/--no-docs",
            help="Serve /docs and /redoc (they load their scripts from a CDN).",
        ),
    ] = _DEFAULT.docs,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms",
            min=0,
            help="Micro-batching: how long a request waits for others to share its forward "
            "pass (0 = off).",
        ),
    ] = _DEFAULT.batch_wait_ms,
    batch_max_texts: Annotated[
        int, typer.Option("--batch-max-texts", min=1, help="Most texts per micro-batch.")
    ] = _DEFAULT.batch_max_texts,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level (debug, info, warning...).")
    ] = "info",
    write_openapi: Annotated[
        Path | None,
        typer.Option(
            "--write-openapi",
            help="Write the OpenAPI schema to this file and exit (no server).",
            show_default=False,
        ),
    ] = None,
    respond_model: Annotated[
        str | None,
        typer.Option(
            help="LLM answering POST /v1/respond (see emoscope respond --model).",
            show_default=False,
        ),
    ] = None,
    respond_backend: Annotated[str, typer.Option(help="Backend of --respond-model.")] = "hf",
    respond_base_url: Annotated[
        str | None, typer.Option(help="openai: server of --respond-model.", show_default=False)
    ] = None,
) -> None:
    """Serve the emoscope HTTP API and its web page (http://HOST:PORT/)."""
    from emoscope.recognizers.base import max_text_chars as max_text_chars_in_force
    from emoscope.serve.app import create_app
    from emoscope.serve.app import write_openapi as _write_openapi

    if write_openapi is not None:
        _write_openapi(write_openapi)
        typer.echo(f"note: wrote {write_openapi}", err=True)
        return
    import uvicorn

    config = ServeConfig(
        recognizer=recognizer,
        taxonomy=taxonomy,
        max_batch=max_batch,
        max_utterances=max_utterances,
        max_text_chars=max_text_chars or max_text_chars_in_force(),
        max_body_bytes=max_body_bytes,
        concurrency=concurrency,
        max_queue=max_queue,
        api_keys=read_api_keys(api_key_file),
        cors_origins=tuple(cors_origin or ()),
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        docs=docs,
        batch_wait_ms=batch_wait_ms,
        batch_max_texts=batch_max_texts,
    )
    if not config.api_keys and not _is_loopback(host):
        typer.echo(
            f"warning: listening on {host} without API keys: anyone who can reach this address "
            f"can use the service; set ${API_KEYS_ENV} or --api-key-file (docs/serve.md)",
            err=True,
        )
    request_log = logging.getLogger("emoscope.serve")
    if not request_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     request %(message)s"))
        request_log.addHandler(handler)
    request_log.setLevel(log_level.upper() if log_level.isalpha() else "INFO")
    # Loading here (not in the app's start-up) turns a bad --recognizer into a one-line error;
    # without --recognizer this is the default model (or the lexicon, with a note, when the
    # default model is not installed).
    rec = load_recognizer_or_default(recognizer)
    supporter = None
    if respond_model is not None:
        from emoscope.cli.support import build_backend
        from emoscope.support.respond import Supporter

        llm = build_backend(respond_backend, respond_model, base_url=respond_base_url)
        supporter = Supporter(llm)
    app = create_app(config, recognizer=rec, supporter=supporter)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the emoscope CLI."""
    app.command("serve")(serve)
