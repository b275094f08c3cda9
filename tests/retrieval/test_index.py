"""The vector indexes behind the demonstration store, through their protocol."""

from __future__ import annotations

import numpy as np
import pytest

from emoscope.errors import EmoscopeError
from emoscope.retrieval import index as retrieval_index
from emoscope.retrieval.index import (
    ExactIndex,
    HNSWIndex,
    VectorIndex,
    check_index_type,
    index_type,
)


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_index_is_brute_force_with_exclusions_and_stable_ties() -> None:
    vectors = _unit(300, 8, 0)
    vectors[10] = vectors[20]  # a tie: the earlier row comes first
    queries = np.stack([vectors[20], _unit(1, 8, 1)[0]])
    index: VectorIndex = ExactIndex()
    scores, rows = index.search(vectors, queries, [[], []], 4)
    brute = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :4]
    assert [r.tolist() for r in rows] == brute.tolist()
    assert rows[0][:2].tolist() == [10, 20]
    assert all(list(s) == sorted(s, reverse=True) for s in scores)
    # excluded rows are skipped and the next best take their place
    _, rows = index.search(vectors, queries, [[10, 20], []], 4)
    six = np.argsort(-(queries[0] @ vectors.T), kind="stable")[:6]
    assert rows[0].tolist() == six[2:].tolist()
    # k beyond what is left after exclusion
    _, rows = index.search(vectors[:3], queries[:1], [[0]], 5)
    assert sorted(rows[0].tolist()) == [1, 2]


def test_hnsw_index_extends_round_trips_and_refuses_a_mismatched_graph() -> None:
    pytest.importorskip("faiss")
    vectors = _unit(400, 16, 2)
    hnsw = HNSWIndex(m=8, ef_construction=64, ef_search=32)
    assert hnsw.size == 0
    assert hnsw.update(vectors[:300]) > 0 and hnsw.size == 300
    queries = vectors[350:355]
    _, rows = hnsw.search(vectors, queries, [[] for _ in queries], 1)  # adds the other 100 first
    assert hnsw.size == 400
    assert [r.tolist() for r in rows] == [[350 + j] for j in range(5)]
    _, rows = hnsw.search(vectors, queries, [[350 + j] for j in range(5)], 3)
    assert all(350 + j not in r for j, r in enumerate(rows))
    again = HNSWIndex(m=8)
    data = hnsw.to_bytes(vectors)
    assert not again.from_bytes(data, 399, 16) and again.ann is None
    assert again.from_bytes(data, 400, 16) and again.size == 400
    assert again.update(vectors) == 0.0  # nothing to add: the saved graph is reused


def test_index_type_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    assert index_type("exact", 10**9) == "exact"
    assert index_type("hnsw", 1) == "hnsw"
    monkeypatch.setattr(retrieval_index, "AUTO_ANN_THRESHOLD", 50)
    monkeypatch.setattr(retrieval_index, "faiss_module", lambda: object())
    assert [index_type("auto", n) for n in (49, 50)] == ["exact", "hnsw"]
    monkeypatch.setattr(retrieval_index, "faiss_module", lambda: None)
    assert index_type("auto", 50) == "exact"  # without FAISS "auto" stays exact
    with pytest.raises(EmoscopeError, match="needs FAISS"):
        HNSWIndex().update(_unit(3, 4, 0))
    with pytest.raises(EmoscopeError, match="unknown index type 'ivf'"):
        check_index_type("ivf")
