"""The chat-backend protocol shared by every LLM backend, and the on-disk response cache.

A backend turns a batch of chat conversations (lists of ``{"role", "content"}`` messages) into
one :class:`Generation` each. Two implementations ship with emoscope: :mod:`emoscope.llm.hf`
(a local Hugging Face causal LM) and :mod:`emoscope.llm.openai` (any server speaking the OpenAI
``/v1/chat/completions`` protocol). :func:`load_backend` builds either by name (any other by
a dotted path), and :func:`generate_texts` asks any backend for plain strings.

:class:`ResponseCache` stores every answer in one SQLite file keyed by a hash of
``(model, messages, generation parameters)``, so an interrupted evaluation resumes where it
stopped and a repeated prompt never reaches the model twice.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from emoscope._imports import import_object, is_dotted_path
from emoscope.errors import EmoscopeError

__all__ = [
    "BACKENDS",
    "BACKEND_CLASSES",
    "ChatBackend",
    "Generation",
    "Message",
    "ResponseCache",
    "cached_generate",
    "can_score",
    "check_conversations",
    "check_request",
    "generate_texts",
    "load_backend",
]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class Generation:
    """One model answer.

    Attributes:
        text: the generated text (the prompt is never included).
        prompt_tokens: tokens the prompt took (as counted by the model's tokenizer or server;
            0 when a server does not report usage).
        completion_tokens: tokens generated.
        cached: whether the answer came from the response cache instead of the model.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


def can_score(backend: object) -> bool:
    """Whether ``backend`` scores given answers as well as generating text: a
    ``score(conversations, choices)`` method returning each choice's log-likelihood, as the hf
    backend has (label scoring; an OpenAI-protocol server only generates)."""
    return callable(getattr(backend, "score", None))


@runtime_checkable
class ChatBackend(Protocol):
    """What an LLM backend offers: a name, a model id and batched chat generation."""

    name: str
    model: str

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Generation]:
        """Answer each conversation; ``temperature`` 0 means greedy decoding."""
        ...


def check_conversations(conversations: Sequence[Sequence[Message]]) -> list[list[dict[str, str]]]:
    """Validate chat conversations and return them as plain lists of dicts.

    Raises:
        EmoscopeError: a conversation is empty, or a message lacks a known role or string content.
    """
    if isinstance(conversations, str | Mapping):
        raise EmoscopeError("generate() takes a list of conversations (lists of messages)")
    out: list[list[dict[str, str]]] = []
    for i, conv in enumerate(conversations):
        if isinstance(conv, str | Mapping) or not conv:
            raise EmoscopeError(
                f"conversation {i} should be a non-empty list of messages "
                '{"role": ..., "content": ...}'
            )
        msgs: list[dict[str, str]] = []
        for m in conv:
            role, content = m.get("role"), m.get("content")
            if role not in _ROLES or not isinstance(content, str):
                raise EmoscopeError(
                    f"conversation {i}: bad message {dict(m)!r}; expected a role in "
                    f"{sorted(_ROLES)} and string content"
                )
            msgs.append({"role": role, "content": content})
        out.append(msgs)
    return out


def check_request(
    conversations: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int,
    temperature: float | None = None,
) -> list[list[dict[str, str]]]:
    """:func:`check_conversations` plus the generation limits a backend checks before a call.

    Raises:
        EmoscopeError: bad conversations, ``max_new_tokens`` below 1, or (when given) a
            negative ``temperature``.
    """
    convs = check_conversations(conversations)
    if max_new_tokens < 1:
        raise EmoscopeError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature is not None and temperature < 0:
        raise EmoscopeError(f"temperature must be >= 0, got {temperature}")
    return convs


class ResponseCache:
    """Answers stored in a SQLite file, keyed by a hash of (model, messages, parameters).

    Safe to share between threads of one process; each write is its own transaction, so a
    crash loses at most the answer being written. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT)"
                )
        except sqlite3.DatabaseError as e:
            raise EmoscopeError(f"{self.path}: cannot open the response cache: {e}") from e
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> str:
        """The cache key: SHA-256 of the canonical JSON of model, messages and parameters."""
        blob = json.dumps(
            {"model": model, "messages": [dict(m) for m in messages], "params": dict(params)},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Generation | None:
        """The stored answer for ``key``, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        try:
            d = json.loads(row[0])
            gen = Generation(
                str(d["text"]), int(d["prompt_tokens"]), int(d["completion_tokens"]), True
            )
        except (ValueError, KeyError, TypeError):
            self.misses += 1  # a damaged entry is treated as absent and overwritten later
            return None
        self.hits += 1
        return gen

    def put(self, key: str, gen: Generation) -> None:
        """Store ``gen`` under ``key`` (replacing any previous answer)."""
        value = json.dumps(
            {
                "text": gen.text,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
            },
            ensure_ascii=False,
        )
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, value)
            )

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()
        return int(n)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()


def cached_generate(
    cache: ResponseCache | None,
    model: str,
    conversations: list[list[dict[str, str]]],
    params: Mapping[str, Any],
    run: Callable[[list[list[dict[str, str]]]], list[Generation]],
) -> list[Generation]:
    """Answer ``conversations`` from ``cache`` where possible and with ``run`` for the rest.

    ``run`` receives only the conversations missing from the cache (duplicates asked once), in
    order; its answers are stored before being returned.
    """
    if cache is None:
        return run(conversations)
    keys = [ResponseCache.key(model, conv, params) for conv in conversations]
    found: dict[str, Generation] = {}
    todo: dict[str, list[dict[str, str]]] = {}
    for k, conv in zip(keys, conversations, strict=True):
        if k in found or k in todo:
            continue
        hit = cache.get(k)
        if hit is None:
            todo[k] = conv
        else:
            found[k] = hit
    if todo:
        answers = run(list(todo.values()))
        if len(answers) != len(todo):
            raise EmoscopeError(f"backend returned {len(answers)} answers for {len(todo)} prompts")
        for k, gen in zip(todo, answers, strict=True):
            cache.put(k, gen)
            found[k] = gen
    return [found[k] for k in keys]


BACKEND_CLASSES = {
    "hf": "emoscope.llm.hf:HFBackend",
    "openai": "emoscope.llm.openai:OpenAIBackend",
}
"""Short backend names and the classes they build, imported on first use (no torch or httpx
until a backend is built; and the implementations import this module, not the reverse)."""

BACKENDS = tuple(BACKEND_CLASSES)


def load_backend(kind: str, model: str | None = None, **kwargs: Any) -> ChatBackend:
    """Build a chat backend from a short name or a dotted path.

    * ``"hf"`` (a local transformers model, :class:`emoscope.llm.hf.HFBackend`) or ``"openai"``
      (a server, :class:`emoscope.llm.openai.OpenAIBackend`): called as ``Class(model,
      **kwargs)``; ``model`` is required;
    * a dotted path ``package.module:Factory`` (or ``package.module.Factory``) is imported and
      called as ``Factory(model, **kwargs)`` (or ``Factory(**kwargs)`` without a model).

    Raises:
        EmoscopeError: the backend cannot be found or built, or has no ``generate()``.
    """
    if is_dotted_path(kind):
        factory = import_object(kind, "backend")
        backend = factory(model, **kwargs) if model is not None else factory(**kwargs)
    elif kind in BACKEND_CLASSES:
        if model is None:
            raise EmoscopeError(f"backend {kind!r} needs a model (--model)")
        backend = import_object(BACKEND_CLASSES[kind], "backend")(model, **kwargs)
    else:
        raise EmoscopeError(
            f"unknown LLM backend {kind!r}; expected one of: {', '.join(BACKENDS)} "
            "or a dotted path 'package.module:Factory'"
        )
    if not callable(getattr(backend, "generate", None)):
        raise EmoscopeError(f"{kind!r} did not produce a backend with generate()")
    return cast(ChatBackend, backend)


def generate_texts(
    backend: Any,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    *,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
) -> list[str]:
    """Call ``backend.generate`` and return plain strings, one per conversation.

    ``backend`` is anything with ``generate(conversations, **options) -> list`` whose results
    are strings or have ``.text`` (a :class:`ChatBackend` or a simpler stand-in).
    ``max_new_tokens`` and ``temperature`` are passed only if the backend's ``generate``
    accepts them (by name or through ``**kwargs``).
    """
    if not conversations:
        return []
    gen = getattr(backend, "generate", None)
    if gen is None:
        raise EmoscopeError(f"{type(backend).__name__} has no generate() method; not a backend")
    options: dict[str, Any] = {}
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(gen).parameters
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("max_new_tokens", max_new_tokens), ("temperature", temperature)):
        if value is not None and (var_kw or name in params):
            options[name] = value
    convs = [[dict(m) for m in c] for c in conversations]
    results = list(gen(convs, **options))
    if len(results) != len(convs):
        raise EmoscopeError(
            f"backend returned {len(results)} generations for {len(convs)} conversations"
        )
    return [r if isinstance(r, str) else str(getattr(r, "text", r)) for r in results]
