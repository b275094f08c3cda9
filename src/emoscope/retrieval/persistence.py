"""A demonstration store on disk, and the check that a store is searched with its own encoder.

A saved store is a folder: ``vectors.npy`` (float32, or float16 on request), ``items.jsonl`` (one
item's text and provenance per line, in vector order), ``store.json`` (format version, encoder
name, dimension and a probe embedding that detects a different encoder on load, index settings)
and, for HNSW stores, ``index.faiss``. :meth:`DemonstrationStore.save
<emoscope.retrieval.store.DemonstrationStore.save>` and ``load`` call :func:`save_store` and
:func:`load_store`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope._io import atomic_open, write_json
from emoscope._version import __version__
from emoscope.errors import DataError, EmoscopeError
from emoscope.retrieval.encoder import SentenceEncoder
from emoscope.retrieval.index import check_index_type, faiss_module
from emoscope.retrieval.records import Item

if TYPE_CHECKING:
    from emoscope.retrieval.store import DemonstrationStore

__all__ = ["FORMAT", "FORMAT_VERSION", "PROBE_TEXT", "check_encoder", "load_store", "save_store"]

_log = logging.getLogger(__name__)

FORMAT = "emoscope-retrieval-store"
FORMAT_VERSION = 1
PROBE_TEXT = "I can't believe you did that, it's wonderful!"
_PROBE_MIN_COSINE = 0.999
_CONFIG_FILE = "store.json"
_VECTORS_FILE = "vectors.npy"
_ITEMS_FILE = "items.jsonl"
_INDEX_FILE = "index.faiss"


def _probe(encoder: SentenceEncoder) -> np.ndarray:
    return encoder.encode([PROBE_TEXT])[0]


def check_encoder(expected: dict[str, Any] | None, encoder: SentenceEncoder) -> None:
    """Refuse ``encoder`` when it is not the one a saved store recorded (``expected``: its
    ``name``, ``dim`` and ``probe`` embedding of :data:`PROBE_TEXT`)."""
    exp = expected or {}
    dim = exp.get("dim")
    if dim is not None and encoder.dim != dim:
        raise EmoscopeError(
            f"encoder {encoder.name!r} gives {encoder.dim}-dimensional vectors but the store "
            f"was built with {exp.get('name')!r} ({dim} dimensions); load it with that encoder"
        )
    probe = exp.get("probe")
    if probe is not None:
        cos = float(np.dot(_probe(encoder), np.asarray(probe, dtype=np.float32)))
        if cos < _PROBE_MIN_COSINE:
            raise EmoscopeError(
                f"encoder {encoder.name!r} embeds differently from {exp.get('name')!r}, the "
                f"encoder the store was built with (probe cosine {cos:.4f}); load the store "
                "with that encoder"
            )


def save_store(store: DemonstrationStore, directory: str | Path, dtype: str = "float32") -> Path:
    """Write ``store`` to ``directory`` (created if needed); every file is written atomically.

    ``dtype="float16"`` halves the size of ``vectors.npy`` at a small cost in precision. An
    HNSW store also writes its index (building it first if needed).
    """
    if dtype not in ("float32", "float16"):
        raise EmoscopeError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    if not len(store):
        raise EmoscopeError("the demonstration store is empty; nothing to save")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    encoder = store.encoder
    vectors = store.vectors
    with atomic_open(out / _VECTORS_FILE, "wb", encoding=None) as fh:
        np.save(fh, vectors.astype(dtype))
    with atomic_open(out / _ITEMS_FILE) as fh:
        for it in store.items:
            fh.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
    index_info: dict[str, Any] = {
        "mode": store.index_mode,
        "type": store.index_type,
        "hnsw_m": store.hnsw_m,
        "ef_construction": store.ef_construction,
        "ef_search": store.ef_search,
    }
    if store.index_type == "hnsw":
        data = store.hnsw_index().to_bytes(vectors)
        with atomic_open(out / _INDEX_FILE, "wb", encoding=None) as fh:
            fh.write(data)
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
            "n_items": len(store),
            "dim": int(vectors.shape[1]),
            "dtype": dtype,
            "encoder": {
                **encoder.describe(),
                "probe_text": PROBE_TEXT,
                "probe": [round(float(x), 6) for x in _probe(encoder)],
            },
            "index": index_info,
            "sources": store.sources(),
        },
    )
    return out


def _read_config(folder: Path) -> dict[str, Any]:
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
    return cfg


def _read_items(items_path: Path) -> list[Item]:
    items = []
    with open(items_path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                items.append(Item.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise DataError(items_path, line_no, str(e), "one item object per line") from None
    return items


def load_store(
    cls: type[DemonstrationStore],
    directory: str | Path,
    *,
    encoder: SentenceEncoder | str | None = None,
    index: str | None = None,
) -> DemonstrationStore:
    """Read a store written by :func:`save_store` as a ``cls``; the arguments are those of
    :meth:`DemonstrationStore.load <emoscope.retrieval.store.DemonstrationStore.load>`."""
    folder = Path(directory)
    cfg = _read_config(folder)
    ix = cfg.get("index") or {}
    enc_cfg = cfg.get("encoder") or {}
    store = cls(
        encoder=encoder if encoder is not None else enc_cfg.get("name"),
        index=check_index_type(index or ix.get("mode", "auto")),
        hnsw_m=int(ix.get("hnsw_m", 32)),
        ef_construction=int(ix.get("ef_construction", 200)),
        ef_search=int(ix.get("ef_search", 128)),
    )
    vec_path = folder / _VECTORS_FILE
    items_path = folder / _ITEMS_FILE
    for p in (vec_path, items_path):
        if not p.is_file():
            raise EmoscopeError(f"{p}: missing file of the demonstration store")
    try:
        vectors = np.load(vec_path, allow_pickle=False).astype(np.float32)
    except (ValueError, OSError) as e:
        raise DataError(vec_path, None, f"unreadable vectors ({e})", "a .npy array") from None
    items = _read_items(items_path)
    n, dim = cfg.get("n_items"), cfg.get("dim")
    if vectors.shape != (len(items), dim) or len(items) != n:
        raise DataError(
            folder,
            None,
            f"{len(items)} items and vectors of shape {vectors.shape}",
            f"{n} items and vectors of shape ({n}, {dim})",
        )
    if len({it.id for it in items}) != len(items):
        raise DataError(items_path, None, "duplicate item ids", "unique ids")
    expected = {"name": enc_cfg.get("name"), "dim": dim, "probe": enc_cfg.get("probe")}
    # an encoder given here is checked at once; one named by the store when first used
    store._restore(items, vectors, expected, check_now=encoder is not None)
    index_file = folder / _INDEX_FILE
    if (
        store.index_type == "hnsw"
        and index_file.is_file()
        and faiss_module() is not None
        and not store._hnsw.from_bytes(index_file.read_bytes(), len(items), vectors.shape[1])
    ):
        _log.warning("ignoring %s: it does not match the stored vectors", index_file)
    return store
