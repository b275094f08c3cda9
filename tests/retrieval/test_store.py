"""Tests of emoscope.retrieval: the demonstration store, its persistence and its CLI.

Texts are embedded with a tiny random BERT (the ``tiny_base_model`` fixture) loaded through the
real transformers path; the one test with the real all-MiniLM-L6-v2 is marked slow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from emoscope.base_model import DEFAULT_BASE_MODEL
from emoscope.datasets import load_dataset
from emoscope.errors import EmoscopeError
from emoscope.retrieval import DemonstrationStore, Hit, Item, Query, SentenceEncoder, item_id
from emoscope.retrieval import index as retrieval_index

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def encoder(tiny_base_model: Path) -> SentenceEncoder:
    return SentenceEncoder(str(tiny_base_model))


def _other_bert(folder: Path, tiny_base_model: Path, hidden: int = 32, seed: int = 1) -> Path:
    """Another random BERT with the same tokenizer (different weights or width)."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    for f in tiny_base_model.iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            shutil.copy(f, folder / f.name)
    cfg = BertConfig.from_pretrained(tiny_base_model)
    cfg.hidden_size = hidden
    cfg.intermediate_size = 2 * hidden
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(folder)
    return folder


def _random_items(n: int, dim: int, seed: int = 0) -> tuple[list[Item], np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [Item(id=f"r/{i}", text=f"text {i}", label="joy", source="r") for i in range(n)]
    return items, v


# ------------------------------------------------------------------------------------------
# Encoder


def test_encoder_unit_vectors_in_input_order(encoder: SentenceEncoder) -> None:
    texts = ["i am so happy", "sad", "what a wonderful day it was today", "okay"]
    v = encoder.encode(texts, batch_size=2)
    assert v.shape == (4, encoder.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    # batching by length must not change which row belongs to which text
    assert np.allclose(encoder.encode(texts[::-1], batch_size=3), v[::-1], atol=1e-5)
    assert np.allclose(encoder.encode([texts[2]])[0], v[2], atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_encoder_load_error(tmp_path: Path) -> None:
    with pytest.raises(EmoscopeError, match="cannot load sentence encoder"):
        SentenceEncoder(str(tmp_path))


@pytest.mark.slow
def test_real_minilm_matches_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    st = pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = SentenceEncoder()
    if enc.name != DEFAULT_BASE_MODEL:
        pytest.skip("all-MiniLM-L6-v2 is not the resolved base model here")
    texts = ["Oh my God, you got the job!", "I am so sad today.", "Okay."]
    ref = st.SentenceTransformer(enc.location, device="cpu").encode(texts)
    assert enc.dim == 384 and enc.max_seq_length == 256
    assert np.allclose(enc.encode(texts), ref, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Search correctness


@pytest.mark.parametrize("chunk", [retrieval_index._ROW_CHUNK, 97])
def test_exact_topk_matches_brute_force(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(retrieval_index, "_ROW_CHUNK", chunk)  # 97 forces the chunk-merging path
    items, v = _random_items(1000, 16)
    store = DemonstrationStore(index="exact")
    store.add_items(items, v)
    q = _random_items(40, 16, seed=1)[1]
    for k in (1, 3, 10):
        hits = store.search_vectors(q, k=k)
        brute = np.argsort(-(q @ v.T), axis=1, kind="stable")[:, :k]
        assert [[h.id for h in hs] for hs in hits] == [[f"r/{i}" for i in row] for row in brute]
        for hs, row in zip(hits, q @ v.T, strict=True):
            sims = [h.similarity for h in hs]
            assert sims == sorted(sims, reverse=True)
            assert sims[0] == pytest.approx(row.max(), abs=1e-6)
            assert all(h.distance == pytest.approx(2 - 2 * h.similarity) for h in hs)
    # excluded ids are skipped and the next best take their place
    top = [h.id for h in store.search_vectors(q[:1], k=5)[0]]
    got = [h.id for h in store.search_vectors(q[:1], k=3, exclude_ids=[top[:2]])[0]]
    assert got == top[2:5]
    # k larger than the store: every item once
    small = DemonstrationStore(index="exact")
    small.add_items(items[:4], v[:4])
    assert len(small.search_vectors(q[:1], k=10)[0]) == 4
    assert len(small.search_vectors(q[:1], k=10, exclude_ids=[["r/0"]])[0]) == 3


def test_hnsw_recall_on_random_set(monkeypatch: pytest.MonkeyPatch) -> None:
    items, v = _random_items(3000, 24)
    q = _random_items(200, 24, seed=5)[1]
    exact = DemonstrationStore(index="exact")
    exact.add_items(items, v)
    ann = DemonstrationStore(index="hnsw", hnsw_m=16, ef_construction=100, ef_search=64)
    ann.add_items(items, v)
    assert ann.index_type == "hnsw"
    want = [{h.id for h in hs} for hs in exact.search_vectors(q, k=10)]
    got = [{h.id for h in hs} for hs in ann.search_vectors(q, k=10)]
    recall = np.mean([len(a & b) / 10 for a, b in zip(want, got, strict=True)])
    assert recall >= 0.9
    # exclusion also holds with the ANN index, and items added later are searchable
    first = ann.search_vectors(q[:1], k=3)[0][0].id
    assert first not in {h.id for h in ann.search_vectors(q[:1], k=3, exclude_ids=[first])[0]}
    extra = Item(id="late/0", text="late", source="late")
    ann.add_items([extra], q[:1])
    assert ann.search_vectors(q[:1], k=1)[0][0].id == "late/0"
    # "auto" switches to HNSW at the threshold
    monkeypatch.setattr(retrieval_index, "AUTO_ANN_THRESHOLD", 100)
    auto = DemonstrationStore()
    auto.add_items(items[:99], v[:99])
    assert auto.index_type == "exact"
    auto.add_items(items[99:100], v[99:100])
    assert auto.index_type == "hnsw"


# ------------------------------------------------------------------------------------------
# Building from datasets, self-exclusion, provenance


@pytest.fixture(scope="module")
def meld_store(encoder: SentenceEncoder, mini_data_root: Path) -> DemonstrationStore:
    store = DemonstrationStore(encoder)
    store.add_dataset(load_dataset("meld", "train", root=mini_data_root), source="meld-train")
    store.add_dataset(load_dataset("goemotions", "dev", root=mini_data_root))
    return store


def test_provenance(meld_store: DemonstrationStore, mini_data_root: Path) -> None:
    meld = load_dataset("meld", "train", root=mini_data_root)
    assert meld_store.sources() == {"meld-train": len(meld), "goemotions-dev": 30}
    e = meld.examples[3]
    assert e.dialogue is not None and e.index is not None
    it = meld_store.item(item_id("meld-train", str(e.id)))
    assert (it.text, it.label, it.labels, it.source, it.taxonomy) == (
        e.text,
        e.label,
        e.labels,
        "meld-train",
        "meld",
    )
    assert (it.speaker, it.dialogue_id, it.dataset_id) == (
        e.dialogue[e.index].speaker,
        e.dialogue.id,
        e.id,
    )
    go = next(i for i in meld_store.items if i.source == "goemotions-dev")
    assert go.speaker is None and go.dialogue_id is None and go.taxonomy == "goemotions"
    hit = meld_store.search(e.text, k=1)[0][0]
    assert isinstance(hit, Hit) and hit.id == it.id  # the utterance itself is its nearest item
    assert hit.similarity == pytest.approx(1, abs=1e-5) and hit.speaker == it.speaker
    assert hit.to_dict()["source"] == "meld-train"


def test_never_retrieves_itself(meld_store: DemonstrationStore, mini_data_root: Path) -> None:
    meld = load_dataset("meld", "train", root=mini_data_root)
    queries = [Query.from_example(e, "meld-train") for e in meld.examples]
    own = [item_id("meld-train", str(e.id)) for e in meld.examples]
    for q, own_id, hits in zip(queries, own, meld_store.search(queries, k=5), strict=True):
        assert q.id == own_id
        assert own_id not in {h.id for h in hits}
        assert len(hits) == 5
    # by content: same text, speaker and dialogue (even under another id) is the query itself
    e = meld.examples[0]
    assert e.dialogue is not None and e.index is not None
    spk = e.dialogue[e.index].speaker
    store = DemonstrationStore(meld_store.encoder)
    store.add_items(meld_store.items, meld_store.vectors)
    store.add_texts([e.text], ["joy"], source="copy", speakers=[spk], dialogue_ids=[e.dialogue.id])
    q = Query(e.text, speaker=spk, dialogue_id=e.dialogue.id)
    assert {"copy/0", item_id("meld-train", str(e.id))}.isdisjoint(
        h.id for h in store.search(q, k=5)[0]
    )
    # naming a source narrows the content rule to that source
    q_src = Query(e.text, speaker=spk, dialogue_id=e.dialogue.id, source="copy")
    ids = [h.id for h in store.search(q_src, k=2)[0]]
    assert "copy/0" not in ids and ids[0] == item_id("meld-train", str(e.id))
    # another speaker saying the same words is not the query itself
    other = Query(e.text, speaker="Somebody Else", dialogue_id=e.dialogue.id)
    assert "copy/0" in {h.id for h in store.search(other, k=2)[0]}
    # a plain string excludes nothing by itself; exclude_identical_text drops equal texts
    plain = {h.id for h in store.search(e.text, k=2)[0]}
    assert plain == {"copy/0", item_id("meld-train", str(e.id))}
    assert plain.isdisjoint(h.id for h in store.search(e.text, k=2, exclude_identical_text=True)[0])


def test_exclude_ids_forms(meld_store: DemonstrationStore) -> None:
    texts = ["i am so happy", "i hate this"]
    base = meld_store.search(texts, k=2)
    one, two = base[0][0].id, base[1][0].id
    got = meld_store.search(texts, k=2, exclude_ids=[one, None])
    assert one not in {h.id for h in got[0]} and got[1] == base[1]
    got = meld_store.search(texts, k=2, exclude_ids=[[one], {two}])
    assert one not in {h.id for h in got[0]} and two not in {h.id for h in got[1]}
    single = meld_store.search(texts[0], k=2, exclude_ids=[one, "nonexistent"])
    assert one not in {h.id for h in single[0]}
    with pytest.raises(EmoscopeError, match=r"one\s+entry"):
        meld_store.search(texts, k=2, exclude_ids=[one])


def test_add_texts_and_file(encoder: SentenceEncoder, tmp_path: Path) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text("text,label\nwhat a lovely surprise,Joy\nthat is gross,disgust\n", "utf-8")
    store = DemonstrationStore(encoder)
    ids = store.add_file(csv, taxonomy="meld")
    assert ids == ["mine/#0", "mine/#1"]
    assert [(i.source, i.label) for i in store.items] == [("mine", "joy"), ("mine", "disgust")]
    ids = store.add_texts(["so happy", "so sad"], ["JOY", ["sadness", "fear"]], taxonomy="meld")
    assert ids == ["user/0", "user/1"]
    assert store.item("user/1").labels == ("sadness", "fear")
    assert store.add_texts(["again"]) == ["user/2"]
    with pytest.raises(EmoscopeError, match="unknown meld label 'glee'"):
        store.add_texts(["x"], ["glee"], taxonomy="meld")
    with pytest.raises(EmoscopeError, match="duplicate item id 'user/0'"):
        store.add_texts(["x"], ids=["user/0"])
    with pytest.raises(EmoscopeError, match="empty"):
        store.add_texts(["  "])
    with pytest.raises(EmoscopeError, match="one per text"):
        store.add_texts(["a", "b"], ["joy"])
    assert len(store) == 5


# ------------------------------------------------------------------------------------------
# Persistence


def test_round_trip_identical_results(meld_store: DemonstrationStore, tmp_path: Path) -> None:
    queries = ["i am so happy", "i hate this stupid thing", "wow really", "okay"]
    before = meld_store.search(queries, k=3)
    folder = meld_store.save(tmp_path / "store")
    assert {p.name for p in folder.iterdir()} == {"store.json", "vectors.npy", "items.jsonl"}
    cfg = json.loads((folder / "store.json").read_text())
    assert cfg["n_items"] == len(meld_store) and cfg["index"]["type"] == "exact"
    assert cfg["encoder"]["name"] == meld_store.encoder.name
    loaded = DemonstrationStore.load(folder)  # encoder from the saved name
    assert loaded.items == meld_store.items
    assert np.array_equal(loaded.vectors, meld_store.vectors)
    assert loaded.search(queries, k=3) == before
    # float16 vectors: smaller file, nearly the same similarities
    DemonstrationStore.save(meld_store, tmp_path / "half", dtype="float16")
    half = DemonstrationStore.load(tmp_path / "half", encoder=meld_store.encoder)
    assert (tmp_path / "half" / "vectors.npy").stat().st_size < (
        folder / "vectors.npy"
    ).stat().st_size
    for a, b in zip(half.search(queries, k=1), before, strict=True):
        assert a[0].similarity == pytest.approx(b[0].similarity, abs=2e-3)


def test_round_trip_hnsw(encoder: SentenceEncoder, tmp_path: Path) -> None:
    items, v = _random_items(500, encoder.dim)
    store = DemonstrationStore(encoder, index="hnsw", hnsw_m=8, ef_search=32)
    store.add_items(items, v)
    q = _random_items(20, encoder.dim, seed=3)[1]
    before = store.search_vectors(q, k=5)
    store.save(tmp_path / "ann")
    assert (tmp_path / "ann" / "index.faiss").is_file()
    loaded = DemonstrationStore.load(tmp_path / "ann", encoder=encoder)
    assert loaded.index_type == "hnsw" and loaded.ef_search == 32
    assert loaded._hnsw.ann is not None  # the saved graph is reused, not rebuilt
    assert loaded.search_vectors(q, k=5) == before
    forced = DemonstrationStore.load(tmp_path / "ann", encoder=encoder, index="exact")
    assert forced.index_type == "exact"


def test_load_rejects_other_encoder(
    meld_store: DemonstrationStore, tiny_base_model: Path, tmp_path: Path
) -> None:
    folder = meld_store.save(tmp_path / "store")
    same_dim = _other_bert(tmp_path / "other", tiny_base_model)
    with pytest.raises(EmoscopeError, match="embeds differently"):
        DemonstrationStore.load(folder, encoder=str(same_dim))
    wider = _other_bert(tmp_path / "wider", tiny_base_model, hidden=48)
    with pytest.raises(EmoscopeError, match="48-dimensional"):
        DemonstrationStore.load(folder, encoder=SentenceEncoder(str(wider)))
    # the stored encoder name is checked too when it is loaded lazily
    cfg = json.loads((folder / "store.json").read_text())
    cfg["encoder"]["name"] = str(same_dim)
    (folder / "store.json").write_text(json.dumps(cfg))
    lazy = DemonstrationStore.load(folder)
    with pytest.raises(EmoscopeError, match="embeds differently"):
        lazy.search("hello", k=1)


def test_errors(encoder: SentenceEncoder, tmp_path: Path) -> None:
    empty = DemonstrationStore(encoder)
    with pytest.raises(EmoscopeError, match="empty"):
        empty.search("anything")
    with pytest.raises(EmoscopeError, match="empty"):
        empty.save(tmp_path / "nothing")
    items, v = _random_items(5, encoder.dim)
    store = DemonstrationStore(encoder)
    store.add_items(items, v)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(EmoscopeError, match="k must be a positive integer"):
            store.search("text", k=bad)  # type: ignore[arg-type]
    with pytest.raises(EmoscopeError, match="expected \\(1, 32\\)"):
        store.add_items([Item(id="x", text="x")], np.zeros((1, 7), dtype=np.float32))
    with pytest.raises(EmoscopeError, match="unknown index type"):
        DemonstrationStore(index="ivf")
    with pytest.raises(EmoscopeError, match="not a demonstration store"):
        DemonstrationStore.load(tmp_path)
    folder = store.save(tmp_path / "s")
    (folder / "items.jsonl").write_text(
        "\n".join(json.dumps(i.to_dict()) for i in items[:4]) + "\n", "utf-8"
    )
    with pytest.raises(EmoscopeError, match="4 items and vectors of shape \\(5, 32\\)"):
        DemonstrationStore.load(folder, encoder=encoder)
    cfg = json.loads((folder / "store.json").read_text())
    (folder / "store.json").write_text(json.dumps({**cfg, "version": 99}))
    with pytest.raises(EmoscopeError, match="version 99"):
        DemonstrationStore.load(folder, encoder=encoder)


# ------------------------------------------------------------------------------------------
# Command line


def test_cli_build_query_info(tiny_base_model: Path, mini_data_root: Path, tmp_path: Path) -> None:
    from emoscope.cli.retrieval import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    register(app)
    runner = CliRunner()
    out = tmp_path / "store"
    csv = tmp_path / "mine.csv"
    csv.write_text("text,label\nwhat a lovely surprise,joy\n", "utf-8")
    common = ["--encoder", str(tiny_base_model), "--data-root", str(mini_data_root)]
    res = runner.invoke(
        app,
        [
            "retrieve",
            "build",
            "--dataset",
            "meld",
            "--split",
            "train",
            "--dataset",
            "goemotions:dev",
            "--file",
            str(csv),
            "--out",
            str(out),
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "meld-train" in res.output and "goemotions-dev" in res.output
    store = DemonstrationStore.load(out)
    assert set(store.sources()) == {"meld-train", "goemotions-dev", "mine"}
    res = runner.invoke(app, ["retrieve", "query", str(out), "what a lovely surprise", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 1 and len(rows[0]["hits"]) == 3
    assert rows[0]["hits"][0]["source"] == "mine" and rows[0]["hits"][0]["label"] == "joy"
    res = runner.invoke(
        app, ["retrieve", "query", str(out), "what a lovely surprise", "-k", "2", "-x", "mine/#0"]
    )
    assert res.exit_code == 0 and "mine/#0" not in res.stdout
    res = runner.invoke(app, ["retrieve", "info", str(out)])
    assert res.exit_code == 0 and "exact" in res.output
    res = runner.invoke(app, ["retrieve", "build", "--out", str(tmp_path / "x"), *common])
    assert isinstance(res.exception, EmoscopeError) and "nothing to add" in str(res.exception)
    res = runner.invoke(app, ["retrieve", "query", str(out), "hi", "-k", "0"])
    assert isinstance(res.exception, EmoscopeError)
