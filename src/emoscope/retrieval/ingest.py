"""Turning datasets and lists of texts into store :class:`~emoscope.retrieval.records.Item` s,
with their labels, speaker and dialogue kept as provenance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.retrieval.records import Item, item_id

if TYPE_CHECKING:
    from emoscope.datasets.base import Dataset

__all__ = ["dataset_items", "text_items"]


def dataset_items(dataset: Dataset, source: str, *, skip_unlabelled: bool = False) -> list[Item]:
    """One item per example of ``dataset`` (id ``item_id(source, e.id)``, or
    ``"<source>/#<position>"`` for an example without an id), in the order of its examples."""
    tax = dataset.taxonomy.name if dataset.taxonomy is not None else None
    items: list[Item] = []
    for pos, e in enumerate(dataset.examples):
        if skip_unlabelled and not e.labels:
            continue
        speaker = dialogue_id = None
        if e.dialogue is not None:
            dialogue_id = e.dialogue.id
            if e.index is not None:
                speaker = e.dialogue[e.index].speaker
        items.append(
            Item(
                id=item_id(source, e.id) if e.id else f"{source}/#{pos}",
                text=e.text,
                label=e.label,
                labels=tuple(e.labels),
                source=source,
                speaker=speaker,
                dialogue_id=dialogue_id,
                dataset_id=e.id,
                taxonomy=tax,
                vad=e.vad,
            )
        )
    return items


def text_items(
    texts: Sequence[str],
    labels: Sequence[str | Sequence[str] | None] | None = None,
    *,
    source: str = "user",
    offset: int = 0,
    ids: Sequence[str] | None = None,
    speakers: Sequence[str | None] | None = None,
    dialogue_ids: Sequence[str | None] | None = None,
    taxonomy: str | None = None,
) -> list[Item]:
    """Items for ``texts`` with optional labels (one label, a list of labels or ``None`` per
    text); without ``ids`` numbered ``"<source>/<offset + i>"``. With ``taxonomy`` labels are
    checked and canonicalised.

    Raises:
        EmoscopeError: lists of different lengths, an empty text, an unknown label.
    """
    n = len(texts)
    for name, seq in (
        ("labels", labels),
        ("ids", ids),
        ("speakers", speakers),
        ("dialogue_ids", dialogue_ids),
    ):
        if seq is not None and len(seq) != n:
            raise EmoscopeError(f"{len(seq)} {name} for {n} texts; expected one per text")
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    items = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise EmoscopeError(f"text {i} is empty or not a string; expected some words")
        raw = None if labels is None else labels[i]
        labs = (raw,) if isinstance(raw, str) else tuple(raw or ())
        if tax is not None:
            try:
                labs = tuple(tax.normalize(lab) for lab in labs)
            except ValueError as e:
                raise EmoscopeError(f"text {i}: {e}") from None
        items.append(
            Item(
                id=ids[i] if ids is not None else f"{source}/{offset + i}",
                text=text,
                label=labs[0] if labs else None,
                labels=labs,
                source=source,
                speaker=None if speakers is None else speakers[i],
                dialogue_id=None if dialogue_ids is None else dialogue_ids[i],
                dataset_id=None if ids is None else ids[i],
                taxonomy=None if tax is None else tax.name,
            )
        )
    return items
