"""The chat-backend protocol shared by every LLM backend, and the on-disk response cache.

A backend turns a batch of chat conversations (lists of ``{"role", "content"}`` messages) into
one :class:`Generation` each. Two implementations ship with emoscope: :mod:`emoscope.llm.hf`
(a local Hugging Face causal LM) and :mod:`emoscope.llm.openai` (any server speaking the OpenAI
``/v1/chat/completions`` protocol). :func:`load_backend` builds either by name.

:class:`ResponseCache` stores every answer in one SQLite file keyed by a hash of
``(model, messages, generation parameters)``, so an interrupted evaluation resumes where it
stopped and a repeated prompt never reaches the model twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from emoscope.errors import EmoscopeError

__all__ = [
    "BACKENDS",
    "ChatBackend",
    "Generation",
    "Message",
    "ResponseCache",
    "cached_generate",
    "check_conversations",
    "check_request",
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


BACKENDS = ("hf", "openai")


def load_backend(kind: str, model: str, **kwargs: Any) -> ChatBackend:
    """Build a backend by name: ``"hf"`` (local transformers model) or ``"openai"`` (server).

    ``kwargs`` go to :class:`emoscope.llm.hf.HFBackend` or
    :class:`emoscope.llm.openai.OpenAIBackend`.
    """
    if kind == "hf":
        from emoscope.llm.hf import HFBackend

        return HFBackend(model, **kwargs)
    if kind == "openai":
        from emoscope.llm.openai import OpenAIBackend

        return OpenAIBackend(model, **kwargs)
    raise EmoscopeError(f"unknown LLM backend {kind!r}; expected one of: {', '.join(BACKENDS)}")
