"""The demonstration store: labelled utterances with their embeddings, searchable by cosine
similarity, excluding each query's own item (see :mod:`emoscope.retrieval`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.retrieval.encoder import Progress, SentenceEncoder
from emoscope.retrieval.index import (
    ExactIndex,
    HNSWIndex,
    VectorIndex,
    check_index_type,
    index_type,
)
from emoscope.retrieval.ingest import dataset_items, text_items
from emoscope.retrieval.persistence import check_encoder, load_store, save_store
from emoscope.retrieval.records import Hit, Item, Query, norm_text

if TYPE_CHECKING:
    from emoscope.datasets.base import Dataset

__all__ = ["DEFAULT_K", "DemonstrationStore"]

DEFAULT_K = 3


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
        self._index_mode = check_index_type(index)
        for name, value in (
            ("hnsw_m", hnsw_m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EmoscopeError(f"{name} must be a positive integer, got {value!r}")
        self._hnsw = HNSWIndex(hnsw_m, ef_construction, ef_search)
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
    def index_mode(self) -> str:
        """The index asked for: ``"auto"``, ``"exact"`` or ``"hnsw"``."""
        return self._index_mode

    @property
    def index_type(self) -> str:
        """The search actually used: ``"exact"`` or ``"hnsw"``."""
        return index_type(self._index_mode, len(self))

    @property
    def hnsw_m(self) -> int:
        """HNSW graph degree (neighbours per node)."""
        return self._hnsw.m

    @hnsw_m.setter
    def hnsw_m(self, value: int) -> None:
        self._hnsw.m = value

    @property
    def ef_construction(self) -> int:
        """HNSW candidate list size while building."""
        return self._hnsw.ef_construction

    @ef_construction.setter
    def ef_construction(self, value: int) -> None:
        self._hnsw.ef_construction = value

    @property
    def ef_search(self) -> int:
        """HNSW candidate list size while searching."""
        return self._hnsw.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._hnsw.ef_search = value

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (loaded, and checked against a saved store, on first use)."""
        if self._encoder is None:
            self._encoder = SentenceEncoder(self._encoder_spec, batch_size=self.batch_size)
            if self._expected is not None:
                check_encoder(self._expected, self._encoder)
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
        items = dataset_items(dataset, src, skip_unlabelled=skip_unlabelled)
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
        offset = sum(1 for it in self._items if it.source == source)
        items = text_items(
            texts,
            labels,
            source=source,
            offset=offset,
            ids=ids,
            speakers=speakers,
            dialogue_ids=dialogue_ids,
            taxonomy=taxonomy,
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
                table.setdefault(norm_text(it.text), []).append(i)
            self._by_text = table
        return self._by_text

    def _excluded_rows(self, q: Query, ids: set[str], identical_text: bool) -> list[int]:
        rows = [self._ids[i] for i in ids if i in self._ids]
        by_content = identical_text or q.dialogue_id is not None or q.source is not None
        same_text = self._text_index().get(norm_text(q.text), []) if q.text and by_content else []
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
        index: VectorIndex = self.hnsw_index() if self.index_type == "hnsw" else ExactIndex()
        scores, found = index.search(self._vectors, vecs, rows, k)
        return [
            [Hit.from_item(self._items[r], float(s)) for s, r in zip(sc, fo, strict=True)]
            for sc, fo in zip(scores, found, strict=True)
        ]

    def hnsw_index(self) -> HNSWIndex:
        """The store's HNSW index, built or extended to hold every vector (the time it takes
        counts in ``timings["index_seconds"]``)."""
        self.timings["index_seconds"] += self._hnsw.update(self._vectors)
        return self._hnsw

    def build_index(self) -> None:
        """Build (or extend) the HNSW index now instead of at the first search; no-op when the
        store searches exactly."""
        if self.index_type == "hnsw" and self._items:
            self.hnsw_index()

    # ----------------------------------------------------------------------------------------
    # Persistence

    def save(self, directory: str | Path, *, dtype: str = "float32") -> Path:
        """Write the store to ``directory`` (created if needed); every file is written atomically.

        ``dtype="float16"`` halves the size of ``vectors.npy`` at a small cost in precision.
        An HNSW store also writes its index (building it first if needed). Returns the folder.
        """
        return save_store(self, directory, dtype)

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
        return load_store(cls, directory, encoder=encoder, index=index)

    def _restore(
        self,
        items: list[Item],
        vectors: np.ndarray,
        expected: dict[str, Any],
        *,
        check_now: bool,
    ) -> None:
        """Fill a new store with saved ``items`` and ``vectors`` built by the encoder described
        by ``expected``; with ``check_now`` the store's encoder is checked at once (else on
        first use)."""
        self._items = items
        self._ids = {it.id: i for i, it in enumerate(items)}
        self._vectors = vectors
        self._by_text = None
        self._expected = expected
        if check_now:
            if self._encoder is not None:
                check_encoder(expected, self._encoder)
            else:
                self.encoder  # noqa: B018 - loading it checks it

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
