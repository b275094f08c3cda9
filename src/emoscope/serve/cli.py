"""The ``emoscope serve`` command: run the HTTP service and its web page with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoscope._cli_common import RecognizerOpt

__all__ = ["register"]


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
    ] = 64,
    max_utterances: Annotated[
        int,
        typer.Option("--max-utterances", min=1, help="Most utterances per /v1/dialogue request."),
    ] = 256,
    max_text_chars: Annotated[
        int, typer.Option("--max-text-chars", min=1, help="Most characters per text.")
    ] = 2000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body in bytes.")
    ] = 1_000_000,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Predictions running at once (threads).")
    ] = 2,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", min=0, help="Requests that may wait for a thread before 503."),
    ] = 64,
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
    from emoscope.serve.app import ServeConfig, create_app
    from emoscope.serve.app import write_openapi as _write_openapi

    if write_openapi is not None:
        _write_openapi(write_openapi)
        typer.echo(f"note: wrote {write_openapi}", err=True)
        return
    import uvicorn

    from emoscope.cli import _load_recognizer

    config = ServeConfig(
        recognizer=recognizer,
        taxonomy=taxonomy,
        max_batch=max_batch,
        max_utterances=max_utterances,
        max_text_chars=max_text_chars,
        max_body_bytes=max_body_bytes,
        concurrency=concurrency,
        max_queue=max_queue,
    )
    # Loading here (not in the app's start-up) turns a bad --recognizer into a one-line error;
    # without --recognizer this is the default model (or the lexicon, with a note, when the
    # default model is not installed).
    rec = _load_recognizer(recognizer)
    supporter = None
    if respond_model is not None:
        from emoscope.cli_support import build_backend
        from emoscope.support.respond import Supporter

        llm = build_backend(respond_backend, respond_model, base_url=respond_base_url)
        supporter = Supporter(llm)
    app = create_app(config, recognizer=rec, supporter=supporter)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the emoscope CLI."""
    app.command("serve")(serve)
