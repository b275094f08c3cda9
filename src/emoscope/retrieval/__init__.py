"""Demonstration retrieval: a store of labelled utterances searched by sentence similarity.

The retrieval part of PRC-Emo (Li, Xu, Qiao & Liu, "Do LLMs Feel? Teaching Emotion Recognition
with Prompts, Retrieval, and Curriculum Learning", AAAI 2026; reference code LiXinran6/PRC-Emo):
utterances from emotion datasets are embedded with all-MiniLM-L6-v2 (Wang et al., 2020;
sentence-transformers release by Reimers & Gurevych), and the ``k`` (default 3) most similar ones
are shown to the language model as demonstrations, ``"text" → label (from dataset, distance)``.

**Embeddings.** :class:`SentenceEncoder` mean-pools the last hidden states of a transformers
encoder over real tokens and L2-normalises the result, which is exactly what the
sentence-transformers pipeline of all-MiniLM-L6-v2 does (max sequence length from the model's
``sentence_bert_config.json``, else 256). The default model comes from
:func:`emoscope.base_model.resolve_base_model`; any local folder or Hub id can be given instead.

**Similarity.** Cosine similarity (the dot product of unit vectors). Each :class:`Hit` also
carries ``distance = 2 − 2·similarity``, the squared Euclidean distance between the unit vectors:
the number the reference code prints next to a demonstration (it searches a FAISS L2 index over
normalised MiniLM vectors).

**Never the query itself.** A stored item counts as the query itself, and is never returned, when

1. its id is the query's :attr:`Query.id` or is listed in ``exclude_ids`` for that query, or
2. the query names a dialogue and/or a source (:class:`Query` with ``dialogue_id`` or ``source``)
   and the item has the same text (whitespace-normalised, case-sensitive), the same speaker and
   the same dialogue id, and comes from that source when the query names one.

A plain string query excludes nothing by itself; ``exclude_identical_text=True`` additionally
drops every item whose text equals the query's (useful when a corpus repeats short lines such as
"Okay.").

**Search.** Exact search by default: a chunked matrix product over all vectors. Stores of
:data:`AUTO_ANN_THRESHOLD` (100,000) items or more, or any store created with ``index="hnsw"``,
use an HNSW graph index (Malkov & Yashunin, 2018) from FAISS (``pip install faiss-cpu``);
without FAISS an ``"auto"`` store stays exact. ANN results are approximate: see
``benchmarks/retrieval_ann.py`` for measured recall against exact search.

**On disk** (:meth:`DemonstrationStore.save`): ``vectors.npy`` (float32, or float16 on request),
``items.jsonl`` (one item's text and provenance per line, in vector order), ``store.json`` (format
version, encoder name, dimension and a probe embedding that detects a different encoder on load,
index settings) and, for HNSW stores, ``index.faiss``.

The modules: :mod:`~emoscope.retrieval.records` (``Item``, ``Hit``, ``Query``),
:mod:`~emoscope.retrieval.encoder` (``SentenceEncoder``), :mod:`~emoscope.retrieval.index` (the
``VectorIndex`` protocol: ``ExactIndex``, ``HNSWIndex``), :mod:`~emoscope.retrieval.ingest`
(datasets and texts to items), :mod:`~emoscope.retrieval.persistence` (the folder format) and
:mod:`~emoscope.retrieval.store` (``DemonstrationStore``).
"""

from emoscope.retrieval.encoder import SentenceEncoder
from emoscope.retrieval.index import (
    AUTO_ANN_THRESHOLD,
    INDEX_TYPES,
    ExactIndex,
    HNSWIndex,
    VectorIndex,
)
from emoscope.retrieval.records import Hit, Item, Query, item_id
from emoscope.retrieval.store import DEFAULT_K, DemonstrationStore

__all__ = [
    "AUTO_ANN_THRESHOLD",
    "DEFAULT_K",
    "INDEX_TYPES",
    "DemonstrationStore",
    "ExactIndex",
    "HNSWIndex",
    "Hit",
    "Item",
    "Query",
    "SentenceEncoder",
    "VectorIndex",
    "item_id",
]
