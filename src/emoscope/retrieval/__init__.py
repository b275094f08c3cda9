"""Demonstration retrieval: a store of labelled utterances searched by sentence similarity."""

from emoscope.retrieval.store import (
    AUTO_ANN_THRESHOLD,
    DEFAULT_K,
    INDEX_TYPES,
    DemonstrationStore,
    Hit,
    Item,
    Query,
    SentenceEncoder,
    item_id,
)

__all__ = [
    "AUTO_ANN_THRESHOLD",
    "DEFAULT_K",
    "INDEX_TYPES",
    "DemonstrationStore",
    "Hit",
    "Item",
    "Query",
    "SentenceEncoder",
    "item_id",
]
