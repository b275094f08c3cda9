"""Labelled examples and datasets: what every reader returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emoscope.dialogue import Dialogue
from emoscope.labels import Taxonomy

__all__ = ["Dataset", "Example"]

VAD = tuple[float, float, float]


@dataclass(frozen=True)
class Example:
    """One labelled text, standalone or an utterance inside a dialogue.

    Attributes:
        text: the text (for a dialogue example, the target utterance).
        labels: gold labels in the dataset taxonomy's canonical form (one for single-label
            datasets; empty for VAD-only datasets).
        vad: gold (valence, arousal, dominance) on emoscope's ``[-1, 1]`` scale, if any.
        dialogue: the dialogue the utterance belongs to (``None`` for standalone texts).
        index: position of the utterance in ``dialogue``.
        id: identifier from the source file.
        meta: other fields (line number, rater counts, sentiment...).
    """

    text: str
    labels: tuple[str, ...] = ()
    vad: VAD | None = None
    dialogue: Dialogue | None = field(default=None, repr=False)
    index: int | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str | None:
        """The first gold label (the only one for single-label data)."""
        return self.labels[0] if self.labels else None


@dataclass
class Dataset:
    """A split of a labelled dataset.

    For conversational datasets ``dialogues`` holds the dialogues and ``examples`` holds one
    example per utterance, dialogue by dialogue in order, so that
    ``recognizer.predict(dataset.inputs())`` lines up with ``examples``.
    """

    name: str
    split: str
    examples: list[Example]
    taxonomy: Taxonomy | None = None
    dialogues: list[Dialogue] | None = None
    path: Path | None = None
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def multi_label(self) -> bool:
        """Whether examples may carry several labels."""
        return bool(self.taxonomy and self.taxonomy.multi_label)

    @property
    def has_vad(self) -> bool:
        """Whether examples carry gold VAD."""
        return any(e.vad is not None for e in self.examples)

    def inputs(self) -> list[str | Dialogue]:
        """What to pass to ``Recognizer.predict``: dialogues when conversational, else texts."""
        if self.dialogues is not None:
            return list(self.dialogues)
        return [e.text for e in self.examples]

    def limit(self, n: int | None) -> Dataset:
        """The first ``n`` examples; conversational data keeps whole dialogues (≥ n examples)."""
        if n is None or n >= len(self.examples):
            return self
        if self.dialogues is None:
            return replace(self, examples=self.examples[:n])
        kept: list[Dialogue] = []
        count = 0
        for d in self.dialogues:
            if count >= n:
                break
            kept.append(d)
            count += len(d)
        return replace(self, examples=self.examples[:count], dialogues=kept)
