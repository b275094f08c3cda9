"""Any OpenAI-compatible chat server as a :class:`~emoscope.llm.base.ChatBackend`.

Speaks ``POST {base_url}/chat/completions`` over httpx, so it works with hosted APIs and with
local servers: vLLM (``vllm serve MODEL``), llama.cpp (``llama-server``), Ollama
(``http://localhost:11434/v1``), LM Studio, TGI... Requests run in a bounded thread pool;
429, 5xx, timeouts, connection errors and unreadable replies are retried with exponential
backoff and full jitter (a ``Retry-After`` header is honoured); other 4xx answers fail at once
with the server's message. Answers can be kept in a :class:`~emoscope.llm.base.ResponseCache`.

Configuration: ``base_url`` argument, else ``EMOSCOPE_OPENAI_BASE_URL``, else
``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``; ``api_key`` argument, else
``OPENAI_API_KEY`` (local servers usually need none).
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emoscope.errors import EmoscopeError
from emoscope.llm.base import (
    Generation,
    Message,
    ResponseCache,
    cached_generate,
    check_request,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIBackend", "resolve_base_url"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def resolve_base_url(base_url: str | None = None) -> str:
    """The server URL to use: argument, ``EMOSCOPE_OPENAI_BASE_URL``, ``OPENAI_BASE_URL``, default.

    A bare host (``http://localhost:8000``) gets ``/v1`` appended, as OpenAI-compatible servers
    serve the API under that prefix.
    """
    url = (
        base_url
        or os.environ.get("EMOSCOPE_OPENAI_BASE_URL")
        or os.environ.get("OPENAI_BASE_URL")
        or DEFAULT_BASE_URL
    ).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EmoscopeError(f"bad OpenAI base URL {url!r}; expected e.g. http://localhost:8000/v1")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return str(body)[:300]


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible HTTP server.

    Args:
        model: the model name the server knows (``gpt-4o-mini``, ``Qwen/Qwen3-8B``...).
        base_url: server URL including ``/v1`` (see :func:`resolve_base_url`).
        api_key: bearer token; defaults to ``OPENAI_API_KEY`` if set.
        timeout: seconds to wait for one reply.
        max_retries: retries after the first attempt for retryable failures.
        backoff: base delay in seconds; attempt ``n`` waits up to ``backoff * 2**n`` (full
            jitter), capped at ``max_backoff``; a server's ``Retry-After`` wins when given.
        max_backoff: the longest wait between attempts.
        concurrency: requests in flight at once.
        cache: a :class:`ResponseCache` or a path to one; ``None`` disables caching.
        extra_body: extra JSON fields for every request (e.g. ``{"top_p": 1}`` or server-specific
            options such as vLLM's ``chat_template_kwargs``).
        sleep: the sleep function (tests replace it).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        concurrency: int = 4,
        cache: ResponseCache | str | Path | None = None,
        extra_body: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        if not model:
            raise EmoscopeError("the openai backend needs a model name")
        if concurrency < 1:
            raise EmoscopeError(f"concurrency must be at least 1, got {concurrency}")
        if max_retries < 0 or timeout <= 0 or backoff < 0:
            raise EmoscopeError("max_retries and backoff must be >= 0 and timeout > 0")
        self.model = model
        self.base_url = resolve_base_url(base_url)
        self.url = f"{self.base_url}/chat/completions"
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self.cache = ResponseCache(cache) if isinstance(cache, str | Path) else cache
        self._sleep = sleep
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency),
        )
        self.requests = 0  # HTTP requests sent, retries included

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Generation]:
        """Answer each conversation; at most ``concurrency`` requests run at once."""
        convs = check_request(conversations, max_new_tokens=max_new_tokens)
        params = {"max_tokens": max_new_tokens, "temperature": temperature, **self.extra_body}

        def run(todo: list[list[dict[str, str]]]) -> list[Generation]:
            if len(todo) <= 1 or self.concurrency == 1:
                return [self._complete(c, params) for c in todo]
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
                return list(pool.map(lambda c: self._complete(c, params), todo))

        return cached_generate(self.cache, self.model, convs, params, run)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        with self._rng_lock:
            return self._rng.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def _complete(self, messages: list[dict[str, str]], params: Mapping[str, Any]) -> Generation:
        payload = {"model": self.model, "messages": messages, **params}
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(payload)
            except _RetryableError as e:
                last = str(e)
                if attempt == self.max_retries:
                    break
                self._sleep(self._delay(attempt, e.retry_after))
        raise EmoscopeError(
            f"{self.url}: giving up after {self.max_retries + 1} attempts; last error: {last}"
        )

    def _post(self, payload: Mapping[str, Any]) -> Generation:
        import httpx

        self.requests += 1
        try:
            r = self._client.post(self.url, json=payload)
        except httpx.TimeoutException as e:
            raise _RetryableError(f"timed out ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise _RetryableError(f"connection failed: {e}") from e
        if r.status_code in _RETRY_STATUS:
            raise _RetryableError(
                f"HTTP {r.status_code}: {_error_message(r)}",
                _retry_after_seconds(r.headers.get("Retry-After")),
            )
        if r.status_code >= 400:
            hint = " (check OPENAI_API_KEY)" if r.status_code in (401, 403) else ""
            raise EmoscopeError(f"{self.url}: HTTP {r.status_code}: {_error_message(r)}{hint}")
        try:
            body = r.json()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise _RetryableError(
                f"malformed reply ({type(e).__name__}: {e}): {r.text[:200]!r}"
            ) from e
        usage = body.get("usage") or {}
        return Generation(
            text.strip(),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
