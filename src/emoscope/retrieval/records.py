"""The records of a demonstration store: a stored :class:`Item`, a search :class:`Hit`, and a
:class:`Query` that knows enough about itself to be excluded from its own results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoscope.datasets.base import Example

__all__ = ["Hit", "Item", "Query", "item_id", "norm_text"]


def item_id(source: str, dataset_id: str) -> str:
    """The store id of the example ``dataset_id`` added from ``source`` (``"source/id"``)."""
    return f"{source}/{dataset_id}"


def norm_text(text: str) -> str:
    """``text`` with runs of whitespace made one space (how texts are compared for identity)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Item:
    """One stored utterance and where it came from.

    Attributes:
        id: unique within the store (``"<source>/<dataset id>"`` for dataset examples).
        text: the utterance.
        label: its (first) gold label, ``None`` when unlabelled.
        labels: all gold labels (several for multi-label data such as GoEmotions).
        source: the collection it was added from (e.g. ``"meld-train"``).
        speaker: who said it, for dialogue data.
        dialogue_id: the dialogue it belongs to, for dialogue data.
        dataset_id: its id in the source dataset.
        taxonomy: the taxonomy of its labels.
        vad: its gold valence/arousal/dominance, when the source has them.
    """

    id: str
    text: str
    label: str | None = None
    labels: tuple[str, ...] = ()
    source: str = "user"
    speaker: str | None = None
    dialogue_id: str | None = None
    dataset_id: str | None = None
    taxonomy: str | None = None
    vad: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the fields in order); :meth:`from_dict` reads it back."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["vad"] = None if self.vad is None else list(self.vad)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Item:
        """Build an item from :meth:`to_dict` output.

        Raises:
            ValueError: ``id`` or ``text`` is missing or not a string.
        """
        if not isinstance(d.get("id"), str) or not isinstance(d.get("text"), str):
            raise ValueError("an item needs string 'id' and 'text' fields")
        vad = d.get("vad")
        return cls(
            id=d["id"],
            text=d["text"],
            label=d.get("label"),
            labels=tuple(d.get("labels") or ()),
            source=str(d.get("source", "user")),
            speaker=d.get("speaker"),
            dialogue_id=d.get("dialogue_id"),
            dataset_id=d.get("dataset_id"),
            taxonomy=d.get("taxonomy"),
            vad=None if vad is None else (float(vad[0]), float(vad[1]), float(vad[2])),
        )


@dataclass(frozen=True)
class Hit:
    """One retrieved demonstration.

    ``similarity`` is the cosine similarity to the query; ``distance`` is ``2 − 2·similarity``
    (squared Euclidean distance of the unit vectors, as printed by the reference code).
    """

    id: str
    text: str
    label: str | None
    source: str
    similarity: float
    distance: float
    speaker: str | None = None
    dialogue_id: str | None = None
    dataset_id: str | None = None
    labels: tuple[str, ...] = ()
    taxonomy: str | None = None

    @classmethod
    def from_item(cls, item: Item, similarity: float) -> Hit:
        """A hit for ``item`` at ``similarity``."""
        return cls(
            id=item.id,
            text=item.text,
            label=item.label,
            source=item.source,
            similarity=similarity,
            distance=max(0.0, 2.0 - 2.0 * similarity),
            speaker=item.speaker,
            dialogue_id=item.dialogue_id,
            dataset_id=item.dataset_id,
            labels=item.labels,
            taxonomy=item.taxonomy,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "text": self.text,
            "label": self.label,
            "labels": list(self.labels),
            "source": self.source,
            "similarity": self.similarity,
            "distance": self.distance,
            "speaker": self.speaker,
            "dialogue_id": self.dialogue_id,
            "dataset_id": self.dataset_id,
            "taxonomy": self.taxonomy,
        }


@dataclass(frozen=True)
class Query:
    """A search query that knows enough about itself to be excluded from its own results.

    Attributes:
        text: what to search for.
        id: the store id of the query's own item, if it is stored (never returned).
        speaker: the query utterance's speaker.
        dialogue_id: the query utterance's dialogue.
        source: the source the query comes from (e.g. ``"meld-train"``).
        exclude_ids: further store ids never to return for this query.

    See the module docstring for exactly which items count as the query itself.
    """

    text: str
    id: str | None = None
    speaker: str | None = None
    dialogue_id: str | None = None
    source: str | None = None
    exclude_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_example(cls, example: Example, source: str | None = None) -> Query:
        """The query for a dataset example, self-excluding when the example was added from
        ``source`` with :meth:`DemonstrationStore.add_dataset`."""
        d = example.dialogue
        speaker = None
        if d is not None and example.index is not None:
            speaker = d[example.index].speaker
        own = item_id(source, example.id) if source is not None and example.id else None
        return cls(
            text=example.text,
            id=own,
            speaker=speaker,
            dialogue_id=None if d is None else d.id,
            source=source,
        )
