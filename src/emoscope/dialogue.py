"""Utterances and dialogues: the inputs of conversation emotion recognition."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dialogue", "Utterance"]


@dataclass(frozen=True)
class Utterance:
    """One turn of a conversation.

    Args:
        text: what was said.
        speaker: who said it (``None`` when unknown).
        id: an identifier unique within its dialogue or dataset.
        meta: free-form extra fields (e.g. timestamps, gold labels of a dataset).
    """

    text: str
    speaker: str | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        d: dict[str, Any] = {"text": self.text, "speaker": self.speaker}
        if self.id is not None:
            d["id"] = self.id
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Utterance:
        """Build an utterance from ``{"text": ..., "speaker": ..., "id": ..., "meta": ...}``."""
        if not isinstance(d, dict) or not isinstance(d.get("text"), str):
            raise ValueError(f"an utterance needs a string 'text' field, got {d!r}")
        speaker = d.get("speaker")
        return cls(
            text=d["text"],
            speaker=None if speaker is None else str(speaker),
            id=None if d.get("id") is None else str(d["id"]),
            meta=dict(d.get("meta") or {}),
        )


@dataclass(frozen=True)
class Dialogue:
    """An ordered conversation of :class:`Utterance` objects."""

    utterances: tuple[Utterance, ...]
    id: str | None = None

    def __init__(self, utterances: Sequence[Utterance | str], id: str | None = None) -> None:
        turns = tuple(u if isinstance(u, Utterance) else Utterance(str(u)) for u in utterances)
        object.__setattr__(self, "utterances", turns)
        object.__setattr__(self, "id", id)

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __getitem__(self, i: int) -> Utterance:
        return self.utterances[i]

    @property
    def speakers(self) -> list[str]:
        """Distinct speakers in order of first appearance (unknown speakers left out)."""
        seen: dict[str, None] = {}
        for u in self.utterances:
            if u.speaker is not None:
                seen.setdefault(u.speaker, None)
        return list(seen)

    def context(self, index: int, window: int | None = None) -> list[Utterance]:
        """The utterances before ``index`` (at most ``window`` of them), oldest first."""
        start = 0 if window is None else max(0, index - window)
        return list(self.utterances[start:index])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"id": ..., "utterances": [...]}``."""
        return {"id": self.id, "utterances": [u.to_dict() for u in self.utterances]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | list[Any]) -> Dialogue:
        """Read a dialogue from a dict with ``utterances`` or from a bare list of turns.

        Turns may be dicts (``text``, ``speaker``...) or plain strings.
        """
        if isinstance(d, list):
            turns, did = d, None
        elif isinstance(d, dict) and isinstance(d.get("utterances"), list):
            turns, did = d["utterances"], d.get("id")
        else:
            raise ValueError("a dialogue is a list of turns or an object with an 'utterances' list")
        utts = [Utterance(t) if isinstance(t, str) else Utterance.from_dict(t) for t in turns]
        return cls(utts, id=None if did is None else str(did))
