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
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope import __version__
from emoscope._io import atomic_open, write_json
from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model
from emoscope.errors import DataError, EmoscopeError
from emoscope.labels import get_taxonomy

if TYPE_CHECKING:
    from emoscope.datasets.base import Dataset, Example

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

_log = logging.getLogger(__name__)

DEFAULT_K = 3
AUTO_ANN_THRESHOLD = 100_000
INDEX_TYPES = ("auto", "exact", "hnsw")
FORMAT = "emoscope-retrieval-store"
FORMAT_VERSION = 1
PROBE_TEXT = "I can't believe you did that, it's wonderful!"
_PROBE_MIN_COSINE = 0.999
_DEFAULT_MAX_SEQ_LENGTH = 256
_CONFIG_FILE = "store.json"
_VECTORS_FILE = "vectors.npy"
_ITEMS_FILE = "items.jsonl"
_INDEX_FILE = "index.faiss"
# Exact search scores items in chunks of _ROW_CHUNK rows, and at most _SCORE_BLOCK query-item
# scores at once (64 MB of float32).
_ROW_CHUNK = 1 << 16
_SCORE_BLOCK = 1 << 24

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Records


def item_id(source: str, dataset_id: str) -> str:
    """The store id of the example ``dataset_id`` added from ``source`` (``"source/id"``)."""
    return f"{source}/{dataset_id}"


def _norm_text(text: str) -> str:
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
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "text": self.text,
            "label": self.label,
            "labels": list(self.labels),
            "source": self.source,
            "speaker": self.speaker,
            "dialogue_id": self.dialogue_id,
            "dataset_id": self.dataset_id,
            "taxonomy": self.taxonomy,
            "vad": None if self.vad is None else list(self.vad),
        }

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


# --------------------------------------------------------------------------------------------
# Encoder


class SentenceEncoder:
    """Sentence embeddings: mean pooling over tokens of a transformers encoder, L2-normalised.

    Args:
        model: a local model folder or Hub id; ``None`` resolves all-MiniLM-L6-v2 through
            :func:`~emoscope.base_model.resolve_base_model` (the offline package when installed).
        max_seq_length: token limit per text; defaults to the model's
            ``sentence_bert_config.json`` value, else 256 (capped by the position embeddings).
        batch_size: texts per forward pass.

    Raises:
        EmoscopeError: the model cannot be loaded.
    """

    def __init__(
        self, model: str | None = None, *, max_seq_length: int | None = None, batch_size: int = 64
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        resolved = resolve_base_model(model)
        if model:
            self.name = model
        elif resolved.source in ("offline-package", "hub"):
            self.name = DEFAULT_BASE_MODEL
        else:
            self.name = resolved.location
        self.location = resolved.location
        hf_logging.set_verbosity_error()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI query
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(resolved.location)
            self._model = AutoModel.from_pretrained(resolved.location)
        except (OSError, ValueError) as e:
            raise EmoscopeError(
                f"cannot load sentence encoder {resolved.location!r} (from {resolved.source}): "
                f"{e}. Offline, install the default one with: pip install 'emoscope[offline]'"
            ) from e
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self._model.eval()
        self._torch = torch
        self.dim = int(self._model.config.hidden_size)
        limit = getattr(self._model.config, "max_position_embeddings", None) or 512
        self.max_seq_length = min(max_seq_length or self._configured_length(), int(limit))
        self.batch_size = batch_size

    def _configured_length(self) -> int:
        cfg = Path(self.location) / "sentence_bert_config.json"
        if cfg.is_file():
            with contextlib.suppress(ValueError, OSError):
                value = json.loads(cfg.read_text("utf-8")).get("max_seq_length")
                if isinstance(value, int) and value > 0:
                    return value
        return _DEFAULT_MAX_SEQ_LENGTH

    def describe(self) -> dict[str, Any]:
        """Name, location, dimension, pooling and token limit (recorded in saved stores)."""
        return {
            "name": self.name,
            "location": self.location,
            "dim": self.dim,
            "pooling": "mean",
            "normalized": True,
            "max_seq_length": self.max_seq_length,
        }

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Unit-length embeddings of ``texts``, shape ``(len(texts), dim)``, float32.

        Texts are batched by length (then restored to input order) to limit padding;
        ``progress(done, total)`` is called after each batch.
        """
        torch = self._torch
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        size = batch_size or self.batch_size
        order = sorted(range(n), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, n, size):
                idx = order[start : start + size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
                if progress is not None:
                    progress(min(start + size, n), n)
        return out


# --------------------------------------------------------------------------------------------
# The store


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _check_index_type(index: str) -> str:
    if index not in INDEX_TYPES:
        raise EmoscopeError(
            f"unknown index type {index!r}; expected one of: {', '.join(INDEX_TYPES)}"
        )
    return index


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise EmoscopeError(f"k must be a positive integer, got {k!r}")
    return int(k)


class DemonstrationStore:
    """Labelled utterances with their embeddings, searchable by cosine similarity.

    Args:
        encoder: the sentence encoder: a :class:`SentenceEncoder`, a model folder or Hub id,
            or ``None`` for all-MiniLM-L6-v2. It is loaded on first use.
        index: ``"auto"`` (exact below :data:`AUTO_ANN_THRESHOLD` items, HNSW from there when
            FAISS is installed), ``"exact"`` or ``"hnsw"``.
        hnsw_m: HNSW graph degree (neighbours per node).
        ef_construction: HNSW candidate list size while building.
        ef_search: HNSW candidate list size while searching (raised to the number of candidates
            requested when that is larger).
        batch_size: texts per encoder forward pass.

    Example::

        store = DemonstrationStore()
        store.add_dataset(load_dataset("meld", "train"), source="meld-train")
        hits = store.search(["Oh my God, you got the job!"], k=3)[0]
        store.save("stores/meld")
    """

    def __init__(
        self,
        encoder: SentenceEncoder | str | None = None,
        *,
        index: str = "auto",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        batch_size: int = 64,
    ) -> None:
        self._index_mode = _check_index_type(index)
        for name, value in (
            ("hnsw_m", hnsw_m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EmoscopeError(f"{name} must be a positive integer, got {value!r}")
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.batch_size = batch_size
        self._encoder: SentenceEncoder | None = None
        self._encoder_spec: str | None = None
        self._expected: dict[str, Any] | None = None  # encoder identity recorded in a saved store
        if isinstance(encoder, SentenceEncoder):
            self._encoder = encoder
        else:
            self._encoder_spec = encoder
        self._items: list[Item] = []
        self._ids: dict[str, int] = {}
        self._by_text: dict[str, list[int]] | None = None
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ann: Any = None  # FAISS index over the first ``_ann.ntotal`` vectors
        self.timings: dict[str, float] = {"encode_seconds": 0.0, "index_seconds": 0.0}

    # ----------------------------------------------------------------------------------------
    # Basics

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"DemonstrationStore({len(self)} items, index={self.index_type!r})"

    @property
    def items(self) -> tuple[Item, ...]:
        """The stored items, in vector order."""
        return tuple(self._items)

    @property
    def vectors(self) -> np.ndarray:
        """The unit-length embeddings, shape ``(len(store), dim)`` (a read-only view)."""
        v = self._vectors.view()
        v.setflags(write=False)
        return v

    def item(self, id: str) -> Item:
        """The item with store id ``id``.

        Raises:
            KeyError: no such item.
        """
        return self._items[self._ids[id]]

    def sources(self) -> dict[str, int]:
        """Number of items per source."""
        return dict(Counter(it.source for it in self._items))

    @property
    def index_type(self) -> str:
        """The search actually used: ``"exact"`` or ``"hnsw"``."""
        if self._index_mode == "hnsw":
            return "hnsw"
        if self._index_mode == "auto" and len(self) >= AUTO_ANN_THRESHOLD and _faiss() is not None:
            return "hnsw"
        return "exact"

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (loaded, and checked against a saved store, on first use)."""
        if self._encoder is None:
            self._encoder = SentenceEncoder(self._encoder_spec, batch_size=self.batch_size)
            if self._expected is not None:
                self._check_encoder(self._encoder)
        return self._encoder

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embeddings of ``texts`` with the store's encoder."""
        encoder = self.encoder  # loading the model is not encoding time
        t0 = time.perf_counter()
        out = encoder.encode(texts, progress=progress)
        self.timings["encode_seconds"] += time.perf_counter() - t0
        return out

    # ----------------------------------------------------------------------------------------
    # Adding

    def add_items(
        self,
        items: Sequence[Item],
        vectors: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Add items, encoding their texts unless ``vectors`` (one unit row per item) is given.

        Given vectors must come from the store's encoder (a saved store records that encoder
        and checks it on load).

        Returns the ids of the added items.

        Raises:
            EmoscopeError: an empty text, a duplicate id, or vectors of the wrong shape.
        """
        items = list(items)
        seen: set[str] = set()
        for it in items:
            if not it.text.strip():
                raise EmoscopeError(f"item {it.id!r} has an empty text; expected some words")
            if it.id in self._ids or it.id in seen:
                raise EmoscopeError(
                    f"duplicate item id {it.id!r}; expected ids unique within the store "
                    "(use another source name when adding the same data twice)"
                )
            seen.add(it.id)
        if not items:
            return []
        if vectors is None:
            vecs = self.encode([it.text for it in items], progress=progress)
        else:
            vecs = np.asarray(vectors, dtype=np.float32)
            dim = self._vectors.shape[1] if len(self) else vecs.shape[-1]
            if vecs.shape != (len(items), dim):
                raise EmoscopeError(
                    f"vectors have shape {vecs.shape}; expected ({len(items)}, {dim})"
                )
        if len(self) and vecs.shape[1] != self._vectors.shape[1]:
            raise EmoscopeError(
                f"the encoder gives {vecs.shape[1]}-dimensional vectors but the store holds "
                f"{self._vectors.shape[1]}-dimensional ones"
            )
        start = len(self._items)
        self._vectors = vecs.copy() if start == 0 else np.concatenate([self._vectors, vecs])
        for i, it in enumerate(items):
            self._ids[it.id] = start + i
        self._items.extend(items)
        self._by_text = None
        return [it.id for it in items]

    def add_dataset(
        self,
        dataset: Dataset,
        source: str | None = None,
        *,
        skip_unlabelled: bool = False,
        progress: Progress | None = None,
    ) -> list[str]:
        """Add every example of ``dataset`` (labels, speaker and dialogue kept as provenance).

        ``source`` defaults to ``"<dataset name>-<split>"``. Example ``e`` gets the id
        ``item_id(source, e.id)`` (``"<source>/#<position>"`` when it has no id). Returns the ids
        in the order of ``dataset.examples``.
        """
        src = source or f"{dataset.name}-{dataset.split}"
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
                    id=item_id(src, e.id) if e.id else f"{src}/#{pos}",
                    text=e.text,
                    label=e.label,
                    labels=tuple(e.labels),
                    source=src,
                    speaker=speaker,
                    dialogue_id=dialogue_id,
                    dataset_id=e.id,
                    taxonomy=tax,
                    vad=e.vad,
                )
            )
        return self.add_items(items, progress=progress)

    def add_texts(
        self,
        texts: Sequence[str],
        labels: Sequence[str | Sequence[str] | None] | None = None,
        *,
        source: str = "user",
        ids: Sequence[str] | None = None,
        speakers: Sequence[str | None] | None = None,
        dialogue_ids: Sequence[str | None] | None = None,
        taxonomy: str | None = None,
    ) -> list[str]:
        """Add texts with optional labels (one label, a list of labels or ``None`` per text).

        Without ``ids`` the items are numbered within ``source`` (``"user/0"``, ...). With
        ``taxonomy`` labels are checked and canonicalised.

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
        offset = sum(1 for it in self._items if it.source == source)
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
        return self.add_items(items)

    def add_file(
        self,
        path: str | Path,
        *,
        source: str | None = None,
        dialogues: bool = False,
        **reader_options: Any,
    ) -> list[str]:
        """Add a labelled file of your own, read with :func:`emoscope.datasets.read_texts` (or
        :func:`~emoscope.datasets.read_dialogues` when ``dialogues``); ``reader_options`` go to
        the reader (``text_col``, ``label_col``, ``taxonomy``...). ``source`` defaults to the
        file's stem."""
        from emoscope.datasets import read_dialogues, read_texts

        path = Path(path)
        if dialogues:
            reader_options.setdefault("label_col", "label")
            ds = read_dialogues(path, **reader_options)
        else:
            ds = read_texts(path, **reader_options)
        return self.add_dataset(ds, source or path.stem)

    # ----------------------------------------------------------------------------------------
    # Searching

    def search(
        self,
        queries: str | Query | Sequence[str | Query],
        k: int = DEFAULT_K,
        exclude_ids: Any = None,
        *,
        exclude_identical_text: bool = False,
    ) -> list[list[Hit]]:
        """The ``k`` most similar items for each query, most similar first.

        Args:
            queries: texts and/or :class:`Query` objects (a single one is accepted too).
            k: hits per query (fewer when the store has fewer eligible items).
            exclude_ids: store ids never to return: for a single query a collection of ids;
                for a list of queries a list with one entry per query (an id, a collection of
                ids, or ``None``).
            exclude_identical_text: also drop items whose text equals the query's.

        Returns:
            One list of :class:`Hit` per query; hits of equal similarity are listed in
                insertion order.

        Raises:
            EmoscopeError: empty store, ``k`` not a positive integer, ``exclude_ids`` not
                aligned with the queries.
        """
        qs, excl = self._normalise_queries(queries, exclude_ids)
        self._check_searchable(k)
        vecs = self.encode([q.text for q in qs])
        return self._search(vecs, qs, excl, k, exclude_identical_text)

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = DEFAULT_K,
        exclude_ids: Sequence[Collection[str] | str | None] | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search` for queries already embedded (rows of unit vectors)."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim == 1:
            vecs = vecs[None, :]
        self._check_searchable(k)
        if vecs.ndim != 2 or vecs.shape[1] != self._vectors.shape[1]:
            raise EmoscopeError(
                f"query vectors have shape {vecs.shape}; expected (n, {self._vectors.shape[1]})"
            )
        qs = [Query(text="") for _ in range(len(vecs))]
        _, excl = self._normalise_queries(qs, exclude_ids)
        return self._search(vecs, qs, excl, k, False)

    def _check_searchable(self, k: int) -> None:
        _check_k(k)
        if not self._items:
            raise EmoscopeError("the demonstration store is empty; add items before searching")

    @staticmethod
    def _normalise_queries(
        queries: str | Query | Sequence[str | Query], exclude_ids: Any
    ) -> tuple[list[Query], list[set[str]]]:
        single = isinstance(queries, str | Query)
        seq: list[str | Query] = [queries] if isinstance(queries, str | Query) else list(queries)
        qs = [q if isinstance(q, Query) else Query(str(q)) for q in seq]
        if not qs:
            raise EmoscopeError("no queries given; expected at least one text")
        per: list[Any]
        if exclude_ids is None:
            per = [None] * len(qs)
        elif single:
            per = [exclude_ids]
        else:
            per = list(exclude_ids)
            if len(per) != len(qs):
                raise EmoscopeError(
                    f"exclude_ids has {len(per)} entries for {len(qs)} queries; expected one "
                    "entry (an id, a list of ids or None) per query"
                )
        out = []
        for q, ex in zip(qs, per, strict=True):
            ids = set(q.exclude_ids)
            if q.id is not None:
                ids.add(q.id)
            if isinstance(ex, str):
                ids.add(ex)
            elif ex is not None:
                ids.update(str(x) for x in ex)
            out.append(ids)
        return qs, out

    def _text_index(self) -> dict[str, list[int]]:
        if self._by_text is None:
            table: dict[str, list[int]] = {}
            for i, it in enumerate(self._items):
                table.setdefault(_norm_text(it.text), []).append(i)
            self._by_text = table
        return self._by_text

    def _excluded_rows(self, q: Query, ids: set[str], identical_text: bool) -> list[int]:
        rows = [self._ids[i] for i in ids if i in self._ids]
        by_content = identical_text or q.dialogue_id is not None or q.source is not None
        same_text = self._text_index().get(_norm_text(q.text), []) if q.text and by_content else []
        if identical_text:
            rows.extend(same_text)
        elif q.dialogue_id is not None or q.source is not None:
            for r in same_text:
                it = self._items[r]
                if (
                    it.dialogue_id == q.dialogue_id
                    and it.speaker == q.speaker
                    and (q.source is None or it.source == q.source)
                ):
                    rows.append(r)
        return sorted(set(rows))

    def _search(
        self,
        vecs: np.ndarray,
        qs: list[Query],
        excl: list[set[str]],
        k: int,
        identical_text: bool,
    ) -> list[list[Hit]]:
        rows = [
            self._excluded_rows(q, ids, identical_text) for q, ids in zip(qs, excl, strict=True)
        ]
        if self.index_type == "hnsw":
            scores, found = self._search_hnsw(vecs, rows, k)
        else:
            scores, found = self._search_exact(vecs, rows, k)
        return [
            [Hit.from_item(self._items[r], float(s)) for s, r in zip(sc, fo, strict=True)]
            for sc, fo in zip(scores, found, strict=True)
        ]

    def _search_exact(
        self, vecs: np.ndarray, excluded: list[list[int]], k: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        n = len(self._items)
        chunk = min(n, _ROW_CHUNK)
        qblock = max(1, _SCORE_BLOCK // chunk)
        out_s: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        for qs in range(0, len(vecs), qblock):
            q = vecs[qs : qs + qblock]
            best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
            best_r = np.zeros((len(q), 0), dtype=np.int64)
            for start in range(0, n, chunk):
                sc = q @ self._vectors[start : start + chunk].T
                for j in range(len(q)):
                    rows = [r - start for r in excluded[qs + j] if start <= r < start + chunk]
                    if rows:
                        sc[j, rows] = -np.inf
                kk = min(k, sc.shape[1])
                top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
                best_s = np.concatenate([best_s, np.take_along_axis(sc, top, 1)], axis=1)
                best_r = np.concatenate([best_r, top + start], axis=1)
                if best_s.shape[1] > k:
                    best_s, best_r = _top_sorted(best_s, best_r, k)
            best_s, best_r = _top_sorted(best_s, best_r, k)
            for s, r in zip(best_s, best_r, strict=True):
                keep = np.isfinite(s)
                out_s.append(s[keep])
                out_r.append(r[keep])
        return out_s, out_r

    def _build_ann(self) -> Any:
        faiss = _faiss()
        if faiss is None:
            raise EmoscopeError(
                "index='hnsw' needs FAISS; install it with: pip install faiss-cpu "
                "(or use index='exact')"
            )
        n = len(self._items)
        if self._ann is None:
            t0 = time.perf_counter()
            self._ann = faiss.IndexHNSWFlat(
                self._vectors.shape[1], self.hnsw_m, faiss.METRIC_INNER_PRODUCT
            )
            self._ann.hnsw.efConstruction = self.ef_construction
            self._ann.add(np.ascontiguousarray(self._vectors))
            self.timings["index_seconds"] += time.perf_counter() - t0
        elif self._ann.ntotal < n:
            t0 = time.perf_counter()
            self._ann.add(np.ascontiguousarray(self._vectors[self._ann.ntotal :]))
            self.timings["index_seconds"] += time.perf_counter() - t0
        return self._ann

    def build_index(self) -> None:
        """Build (or extend) the HNSW index now instead of at the first search; no-op when the
        store searches exactly."""
        if self.index_type == "hnsw" and self._items:
            self._build_ann()

    def _search_hnsw(
        self, vecs: np.ndarray, excluded: list[list[int]], k: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        ann = self._build_ann()
        n = len(self._items)
        out_s: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        # Group queries by how many candidates they need so that most go through one call.
        want = [min(n, k + len(ex)) for ex in excluded]
        result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        pending = list(range(len(vecs)))
        while pending:
            groups: dict[int, list[int]] = {}
            for j in pending:
                groups.setdefault(want[j], []).append(j)
            pending = []
            for kk, members in groups.items():
                ann.hnsw.efSearch = max(self.ef_search, kk)
                scores, found = ann.search(np.ascontiguousarray(vecs[members]), kk)
                for row, j in enumerate(members):
                    bad = set(excluded[j])
                    keep = [
                        c for c in range(kk) if found[row, c] >= 0 and int(found[row, c]) not in bad
                    ]
                    if len(keep) < k and kk < n:
                        want[j] = min(n, kk * 2)
                        pending.append(j)
                        continue
                    keep = keep[:k]
                    result[j] = (scores[row, keep], found[row, keep].astype(np.int64))
        for j in range(len(vecs)):
            s, r = result[j]
            order = np.lexsort((r, -s))
            out_s.append(s[order])
            out_r.append(r[order])
        return out_s, out_r

    # ----------------------------------------------------------------------------------------
    # Persistence

    def _probe(self, encoder: SentenceEncoder) -> np.ndarray:
        return encoder.encode([PROBE_TEXT])[0]

    def _check_encoder(self, encoder: SentenceEncoder) -> None:
        exp = self._expected or {}
        dim = exp.get("dim")
        if dim is not None and encoder.dim != dim:
            raise EmoscopeError(
                f"encoder {encoder.name!r} gives {encoder.dim}-dimensional vectors but the store "
                f"was built with {exp.get('name')!r} ({dim} dimensions); load it with that encoder"
            )
        probe = exp.get("probe")
        if probe is not None:
            cos = float(np.dot(self._probe(encoder), np.asarray(probe, dtype=np.float32)))
            if cos < _PROBE_MIN_COSINE:
                raise EmoscopeError(
                    f"encoder {encoder.name!r} embeds differently from {exp.get('name')!r}, the "
                    f"encoder the store was built with (probe cosine {cos:.4f}); load the store "
                    "with that encoder"
                )

    def save(self, directory: str | Path, *, dtype: str = "float32") -> Path:
        """Write the store to ``directory`` (created if needed); every file is written atomically.

        ``dtype="float16"`` halves the size of ``vectors.npy`` at a small cost in precision.
        An HNSW store also writes its index (building it first if needed).
        """
        if dtype not in ("float32", "float16"):
            raise EmoscopeError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if not self._items:
            raise EmoscopeError("the demonstration store is empty; nothing to save")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        encoder = self.encoder
        with atomic_open(out / _VECTORS_FILE, "wb", encoding=None) as fh:
            np.save(fh, self._vectors.astype(dtype))
        with atomic_open(out / _ITEMS_FILE) as fh:
            for it in self._items:
                fh.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
        index_info: dict[str, Any] = {
            "mode": self._index_mode,
            "type": self.index_type,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
        }
        if self.index_type == "hnsw":
            faiss = _faiss()
            ann = self._build_ann()
            with atomic_open(out / _INDEX_FILE, "wb", encoding=None) as fh:
                fh.write(faiss.serialize_index(ann).tobytes())
            index_info["file"] = _INDEX_FILE
        else:
            with contextlib.suppress(FileNotFoundError):
                (out / _INDEX_FILE).unlink()
        write_json(
            out / _CONFIG_FILE,
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "emoscope_version": __version__,
                "n_items": len(self._items),
                "dim": int(self._vectors.shape[1]),
                "dtype": dtype,
                "encoder": {
                    **encoder.describe(),
                    "probe_text": PROBE_TEXT,
                    "probe": [round(float(x), 6) for x in self._probe(encoder)],
                },
                "index": index_info,
                "sources": self.sources(),
            },
        )
        return out

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        encoder: SentenceEncoder | str | None = None,
        index: str | None = None,
    ) -> DemonstrationStore:
        """Read a store written by :meth:`save`.

        Args:
            directory: the store folder.
            encoder: the encoder to embed queries with; by default the one named in the store
                (loaded on first use). Either way it is checked against the store's probe
                embedding, and a different encoder raises :class:`EmoscopeError` (at once when
                given here).
            index: override the saved index mode (``"exact"`` forces exact search).

        Raises:
            EmoscopeError: missing or inconsistent files, unknown format, mismatched encoder.
        """
        folder = Path(directory)
        cfg_path = folder / _CONFIG_FILE
        if not cfg_path.is_file():
            raise EmoscopeError(
                f"{folder} is not a demonstration store (no {_CONFIG_FILE}); build one with "
                "'emoscope retrieve build' or DemonstrationStore.save"
            )
        try:
            cfg = json.loads(cfg_path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(cfg_path, None, f"invalid JSON ({e})", "a store.json file") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise DataError(cfg_path, None, "not a demonstration store config", f"format {FORMAT}")
        if cfg.get("version") != FORMAT_VERSION:
            raise DataError(
                cfg_path,
                None,
                f"store format version {cfg.get('version')!r}",
                f"version {FORMAT_VERSION} (rebuild the store with this emoscope)",
            )
        ix = cfg.get("index") or {}
        enc_cfg = cfg.get("encoder") or {}
        store = cls(
            encoder=encoder if encoder is not None else enc_cfg.get("name"),
            index=_check_index_type(index or ix.get("mode", "auto")),
            hnsw_m=int(ix.get("hnsw_m", 32)),
            ef_construction=int(ix.get("ef_construction", 200)),
            ef_search=int(ix.get("ef_search", 128)),
        )
        store._expected = {
            "name": enc_cfg.get("name"),
            "dim": cfg.get("dim"),
            "probe": enc_cfg.get("probe"),
        }
        vec_path = folder / _VECTORS_FILE
        items_path = folder / _ITEMS_FILE
        for p in (vec_path, items_path):
            if not p.is_file():
                raise EmoscopeError(f"{p}: missing file of the demonstration store")
        try:
            vectors = np.load(vec_path, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError) as e:
            raise DataError(vec_path, None, f"unreadable vectors ({e})", "a .npy array") from None
        items = []
        with open(items_path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    items.append(Item.from_dict(json.loads(line)))
                except (ValueError, TypeError, KeyError, IndexError) as e:
                    raise DataError(
                        items_path, line_no, str(e), "one item object per line"
                    ) from None
        n, dim = cfg.get("n_items"), cfg.get("dim")
        if vectors.shape != (len(items), dim) or len(items) != n:
            raise DataError(
                folder,
                None,
                f"{len(items)} items and vectors of shape {vectors.shape}",
                f"{n} items and vectors of shape ({n}, {dim})",
            )
        store._items = items
        store._ids = {it.id: i for i, it in enumerate(items)}
        if len(store._ids) != len(items):
            raise DataError(items_path, None, "duplicate item ids", "unique ids")
        store._vectors = vectors
        if store._encoder is not None:
            store._check_encoder(store._encoder)
        elif isinstance(encoder, str):
            store._check_encoder(store.encoder)
        index_file = folder / _INDEX_FILE
        if store.index_type == "hnsw" and index_file.is_file():
            faiss = _faiss()
            if faiss is not None:
                data = np.frombuffer(index_file.read_bytes(), dtype=np.uint8)
                ann = faiss.deserialize_index(data)
                if ann.ntotal == len(items) and ann.d == dim:
                    store._ann = ann
                else:
                    _log.warning("ignoring %s: it does not match the stored vectors", index_file)
        return store

    def info(self) -> dict[str, Any]:
        """A summary: size, dimension, index, encoder and items per source."""
        enc = self._encoder.describe() if self._encoder is not None else None
        return {
            "n_items": len(self),
            "dim": int(self._vectors.shape[1]) if len(self) else None,
            "index": self.index_type,
            "encoder": enc or (self._expected or {}).get("name") or self._encoder_spec,
            "sources": self.sources(),
        }


def _top_sorted(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best (score, row) pairs sorted by score desc, then row asc."""
    out_s = np.empty((len(scores), min(k, scores.shape[1])), dtype=scores.dtype)
    out_r = np.empty(out_s.shape, dtype=rows.dtype)
    for j in range(len(scores)):
        order = np.lexsort((rows[j], -scores[j]))[: out_s.shape[1]]
        out_s[j] = scores[j, order]
        out_r[j] = rows[j, order]
    return out_s, out_r
