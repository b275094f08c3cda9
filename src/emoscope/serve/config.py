"""Settings of the HTTP service (:class:`ServeConfig`) and where its API keys come from.

Kept apart from :mod:`emoscope.serve.app` so that reading settings needs no fastapi: the CLI
takes its option defaults from here on every start.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy
from emoscope.recognizers.base import MAX_TEXT_CHARS

__all__ = ["API_KEYS_ENV", "ServeConfig", "read_api_keys"]

API_KEYS_ENV = "EMOSCOPE_API_KEYS"


def read_api_keys(key_file: Path | None) -> tuple[str, ...]:
    """API keys from ``$EMOSCOPE_API_KEYS`` (comma or white-space separated) and ``key_file``.

    The file holds one key per line; blank lines and lines starting with ``#`` are skipped.
    """
    keys = os.environ.get(API_KEYS_ENV, "").replace(",", " ").split()
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EmoscopeError(f"{key_file}: cannot read the API key file ({e})") from None
        lines = [ln.strip() for ln in text.splitlines()]
        file_keys = [ln for ln in lines if ln and not ln.startswith("#")]
        if not file_keys:
            raise EmoscopeError(f"{key_file}: no API key in the file (one key per line)")
        keys += file_keys
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the service; each is an ``emoscope serve`` option of the same name.

    Args:
        recognizer: recogniser name or dotted path; ``None`` = the default model if installed,
            else the lexicon (:func:`emoscope.recognizers.default.default_recognizer_name`).
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
