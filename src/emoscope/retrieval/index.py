"""Nearest-neighbour search over unit vectors by inner product (cosine similarity).

Two indexes follow the small :class:`VectorIndex` protocol: :class:`ExactIndex`, a chunked
matrix product over all vectors, and :class:`HNSWIndex`, an HNSW graph (Malkov & Yashunin, 2018,
"Efficient and robust approximate nearest neighbor search using Hierarchical Navigable Small
World graphs") from FAISS (``pip install faiss-cpu``), whose results are approximate (see
``benchmarks/retrieval_ann.py`` for measured recall). :func:`index_type` says which one a store
of a given size uses.

Both return, per query, the ``k`` best rows that are not excluded for it, sorted by similarity
(descending), ties by row (ascending), so equal hits come in insertion order.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from emoscope.errors import EmoscopeError

__all__ = [
    "AUTO_ANN_THRESHOLD",
    "INDEX_TYPES",
    "ExactIndex",
    "HNSWIndex",
    "VectorIndex",
    "check_index_type",
    "index_type",
]

AUTO_ANN_THRESHOLD = 100_000
INDEX_TYPES = ("auto", "exact", "hnsw")
# Exact search scores items in chunks of _ROW_CHUNK rows, and at most _SCORE_BLOCK query-item
# scores at once (64 MB of float32).
_ROW_CHUNK = 1 << 16
_SCORE_BLOCK = 1 << 24

Results = tuple[list[np.ndarray], list[np.ndarray]]
"""Per query, the similarities of its hits and their rows, best first."""


class VectorIndex(Protocol):
    """What a store needs of an index over its vectors."""

    kind: str

    def search(
        self, vectors: np.ndarray, queries: np.ndarray, excluded: list[list[int]], k: int
    ) -> Results:
        """The ``k`` best rows of ``vectors`` for each row of ``queries``, skipping the rows in
        ``excluded[j]`` for query ``j``."""
        ...


def faiss_module() -> Any:
    """The ``faiss`` module, or ``None`` when FAISS is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def check_index_type(index: str) -> str:
    """``index`` if it is one of :data:`INDEX_TYPES`, else a clear error."""
    if index not in INDEX_TYPES:
        raise EmoscopeError(
            f"unknown index type {index!r}; expected one of: {', '.join(INDEX_TYPES)}"
        )
    return index


def index_type(mode: str, n_items: int) -> str:
    """The search a store in index ``mode`` with ``n_items`` uses: ``"exact"`` or ``"hnsw"``
    (``"auto"`` is HNSW from :data:`AUTO_ANN_THRESHOLD` items when FAISS is installed)."""
    if mode == "hnsw":
        return "hnsw"
    if mode == "auto" and n_items >= AUTO_ANN_THRESHOLD and faiss_module() is not None:
        return "hnsw"
    return "exact"


class ExactIndex:
    """Exact search: scores every vector, a chunk of rows at a time; holds no state."""

    kind = "exact"

    def search(
        self, vectors: np.ndarray, queries: np.ndarray, excluded: list[list[int]], k: int
    ) -> Results:
        """See :meth:`VectorIndex.search`."""
        n = len(vectors)
        chunk = min(n, _ROW_CHUNK)
        qblock = max(1, _SCORE_BLOCK // chunk)
        out_s: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        for qs in range(0, len(queries), qblock):
            q = queries[qs : qs + qblock]
            best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
            best_r = np.zeros((len(q), 0), dtype=np.int64)
            for start in range(0, n, chunk):
                sc = q @ vectors[start : start + chunk].T
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


class HNSWIndex:
    """An HNSW graph over the first :attr:`size` vectors, extended as vectors are added.

    Args:
        m: graph degree (neighbours per node).
        ef_construction: candidate list size while building.
        ef_search: candidate list size while searching (raised to the number of candidates
            requested when that is larger).
    """

    kind = "hnsw"

    def __init__(self, m: int = 32, ef_construction: int = 200, ef_search: int = 128) -> None:
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ann: Any = None

    @property
    def size(self) -> int:
        """How many vectors the graph holds."""
        return 0 if self.ann is None else int(self.ann.ntotal)

    def update(self, vectors: np.ndarray) -> float:
        """Build the graph, or add the vectors it does not hold yet; returns the seconds spent.

        Raises:
            EmoscopeError: FAISS is not installed.
        """
        faiss = faiss_module()
        if faiss is None:
            raise EmoscopeError(
                "index='hnsw' needs FAISS; install it with: pip install faiss-cpu "
                "(or use index='exact')"
            )
        if self.ann is not None and self.ann.ntotal >= len(vectors):
            return 0.0
        t0 = time.perf_counter()
        if self.ann is None:
            self.ann = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
            self.ann.hnsw.efConstruction = self.ef_construction
            self.ann.add(np.ascontiguousarray(vectors))
        else:
            self.ann.add(np.ascontiguousarray(vectors[self.ann.ntotal :]))
        return time.perf_counter() - t0

    def to_bytes(self, vectors: np.ndarray) -> bytes:
        """The graph over ``vectors`` serialised by FAISS (built first if needed)."""
        self.update(vectors)
        out: bytes = faiss_module().serialize_index(self.ann).tobytes()
        return out

    def from_bytes(self, data: bytes, n: int, dim: int) -> bool:
        """Adopt a graph serialised by :meth:`to_bytes` if it holds ``n`` vectors of ``dim``
        dimensions; returns whether it did. Needs FAISS."""
        ann = faiss_module().deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if ann.ntotal != n or ann.d != dim:
            return False
        self.ann = ann
        return True

    def search(
        self, vectors: np.ndarray, queries: np.ndarray, excluded: list[list[int]], k: int
    ) -> Results:
        """See :meth:`VectorIndex.search` (approximate); extends the graph first if needed."""
        self.update(vectors)
        ann = self.ann
        n = len(vectors)
        out_s: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        # Group queries by how many candidates they need so that most go through one call.
        want = [min(n, k + len(ex)) for ex in excluded]
        result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        pending = list(range(len(queries)))
        while pending:
            groups: dict[int, list[int]] = {}
            for j in pending:
                groups.setdefault(want[j], []).append(j)
            pending = []
            for kk, members in groups.items():
                ann.hnsw.efSearch = max(self.ef_search, kk)
                scores, found = ann.search(np.ascontiguousarray(queries[members]), kk)
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
        for j in range(len(queries)):
            s, r = result[j]
            order = np.lexsort((r, -s))
            out_s.append(s[order])
            out_r.append(r[order])
        return out_s, out_r


def _top_sorted(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best (score, row) pairs sorted by score desc, then row asc."""
    out_s = np.empty((len(scores), min(k, scores.shape[1])), dtype=scores.dtype)
    out_r = np.empty(out_s.shape, dtype=rows.dtype)
    for j in range(len(scores)):
        order = np.lexsort((rows[j], -scores[j]))[: out_s.shape[1]]
        out_s[j] = scores[j, order]
        out_r[j] = rows[j, order]
    return out_s, out_r
