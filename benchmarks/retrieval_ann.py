"""HNSW (approximate) versus exact search in emoscope's demonstration store, on a 100k+ store.

The store holds every distinct text of the labelled corpora in the data root (GoEmotions,
MELD, EmoryNLP and EmoBank, all splits), plus EmoBench scenario sentences and EQ-Bench dialogue
lines, topped up with two- and three-turn context windows of MELD and EmoryNLP dialogues
(consecutive utterances joined with a space) until it reaches ``--store-size`` items. Texts are
de-duplicated after whitespace normalisation, so every item is a distinct string. ``--queries``
held-out texts, drawn from the labelled corpora and left out of the store, are the queries.

Measured, all on this machine's CPU:

* build time: encoding the texts with all-MiniLM-L6-v2 (cached in ``--cache-dir`` so reruns skip
  it; the JSON records the time of the run that encoded them) separately from building the index;
* query latency per query with batch size 1 (median, p95) and batched throughput, for exact and
  HNSW search, on pre-encoded queries (the encoder's own per-query time is reported separately);
* recall@k (k = 3 and 10) of HNSW against exact search: the share of the exact top-k ids that
  HNSW returns, averaged over queries; plus a sweep over ``efSearch``.

    nice -n 15 python benchmarks/retrieval_ann.py > /tmp/retrieval_ann.log 2>&1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoscope._io import write_json
from emoscope.datasets import load_dataset, load_emobench, load_eqbench
from emoscope.retrieval import AUTO_ANN_THRESHOLD, DemonstrationStore, Item, SentenceEncoder

_log = logging.getLogger("retrieval_ann")

LABELLED = ("goemotions", "meld", "emorynlp", "emobank")
SPLITS = ("train", "dev", "test")


def _norm(text: str) -> str:
    return " ".join(text.split())


def corpus(store_size: int, n_queries: int, seed: int) -> tuple[list[Item], list[Item], dict]:
    """The store's items, the held-out query items and a description of both."""
    seen: set[str] = set()
    base: list[Item] = []
    raw_counts: dict[str, int] = {}
    kept_counts: dict[str, int] = {}
    windows: dict[int, list[Item]] = {2: [], 3: []}

    def take(it: Item, bucket: list[Item], kind: str) -> None:
        raw_counts[kind] = raw_counts.get(kind, 0) + 1
        key = _norm(it.text)
        if not key or key in seen:
            return
        seen.add(key)
        kept_counts[kind] = kept_counts.get(kind, 0) + 1
        bucket.append(it)

    for name in LABELLED:
        for split in SPLITS:
            ds = load_dataset(name, split)
            src = f"{name}-{split}"
            for pos, e in enumerate(ds.examples):
                speaker = None
                if e.dialogue is not None and e.index is not None:
                    speaker = e.dialogue[e.index].speaker
                take(
                    Item(
                        id=f"{src}/{e.id or pos}",
                        text=_norm(e.text),
                        label=e.label,
                        labels=tuple(e.labels),
                        source=src,
                        speaker=speaker,
                        dialogue_id=None if e.dialogue is None else e.dialogue.id,
                        dataset_id=e.id,
                    ),
                    base,
                    name,
                )
    extra: list[Item] = []
    for task in ("EU", "EA"):
        for item in load_emobench(task):
            for s, sent in enumerate(re.split(r"(?<=[.!?])\s+", item.scenario)):
                if len(sent.split()) >= 3:
                    take(
                        Item(id=f"emobench-{task}/{item.qid}.{s}", text=sent, source="emobench"),
                        extra,
                        "emobench-sentences",
                    )
    for q in load_eqbench():
        for s, line in enumerate(q.dialogue.splitlines()):
            if ":" in line and len(line.split()) >= 3:
                take(
                    Item(id=f"eqbench/{q.id}.{s}", text=line.strip(), source="eqbench"),
                    extra,
                    "eqbench-lines",
                )
    for name in ("meld", "emorynlp"):
        for split in SPLITS:
            for d in load_dataset(name, split).dialogues or []:
                texts = [_norm(u.text) for u in d.utterances]
                for width in (2, 3):
                    for i in range(len(texts) - width + 1):
                        windows[width].append(
                            Item(
                                id=f"{name}-{split}-window{width}/{d.id}.{i}",
                                text=" ".join(texts[i : i + width]),
                                source=f"{name}-window{width}",
                            )
                        )
    rng = random.Random(seed)
    rng.shuffle(base)
    queries, base = base[:n_queries], base[n_queries:]
    items = base + extra
    for width in (2, 3):
        pool = windows[width]
        rng.shuffle(pool)
        for it in pool:
            if len(items) >= store_size:
                break
            take(it, items, f"window{width}")
    composition: dict[str, int] = {}
    for it in items:
        kind = it.source.split("-")[0] if "window" not in it.source else it.source
        composition[kind] = composition.get(kind, 0) + 1
    desc = {
        "store_items": len(items),
        "query_items": len(queries),
        "store_composition": dict(sorted(composition.items())),
        "texts_read_per_kind": raw_counts,
        "distinct_texts_kept_per_kind": kept_counts,
        "notes": (
            "Every item is a distinct text (whitespace-normalised exact duplicates dropped). "
            "goemotions/meld/emorynlp/emobank: all splits' texts; emobench: sentences of the EU "
            "and EA scenarios (3+ words); eqbench: 'Name: line' dialogue lines (3+ words); "
            "<dataset>-window2/3: consecutive 2 or 3 utterances of a MELD or EmoryNLP dialogue "
            "joined with a space, added in random order only until the store reached its size. "
            f"The {len(queries)} queries are held-out texts of the four labelled corpora, not in "
            "the store."
        ),
    }
    return items, queries, desc


def encode_cached(
    encoder: SentenceEncoder, texts: list[str], cache_dir: Path, tag: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors of ``texts``, from ``cache_dir`` when the same model encoded the same texts."""
    h = hashlib.sha256()
    h.update(encoder.location.encode())
    h.update(str(encoder.max_seq_length).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    key = h.hexdigest()[:16]
    vec_path = cache_dir / f"{tag}-{key}.npy"
    meta_path = cache_dir / f"{tag}-{key}.json"
    if vec_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        _log.info("%s: %d vectors from cache %s", tag, len(texts), vec_path)
        return np.load(vec_path), {**meta, "from_cache": True}
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            _log.info("%s: encoded %d/%d", tag, done, total)

    t0 = time.perf_counter()
    vecs = encoder.encode(texts, batch_size=128, progress=progress)
    seconds = time.perf_counter() - t0
    meta = {
        "encode_seconds": round(seconds, 1),
        "texts": len(texts),
        "texts_per_second": round(len(texts) / seconds, 1),
        "encoded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch_threads": _torch_threads(),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(vec_path, vecs)
    write_json(meta_path, meta)
    return vecs, {**meta, "from_cache": False}


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _latency(fn: Any, n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "queries": n,
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[min(n - 1, int(0.95 * n))], 3),
        "mean_ms": round(statistics.fmean(times), 3),
    }


def _throughput(store: DemonstrationStore, q: np.ndarray, k: int) -> dict[str, float]:
    t0 = time.perf_counter()
    store.search_vectors(q, k=k)
    s = time.perf_counter() - t0
    return {"queries": len(q), "seconds": round(s, 3), "queries_per_second": round(len(q) / s, 1)}


def _recall(exact: list[list[str]], approx: list[list[str]], k: int) -> float:
    return float(
        np.mean([len(set(a[:k]) & set(e[:k])) / k for e, a in zip(exact, approx, strict=True)])
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store-size", type=int, default=102_400)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--latency-queries", type=int, default=1_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default="/tmp/emoscope_retrieval_bench")
    ap.add_argument("--out", default="benchmarks/results/retrieval_ann.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    cache_dir = Path(args.cache_dir)

    t0 = time.perf_counter()
    items, queries, desc = corpus(args.store_size, args.queries, args.seed)
    _log.info(
        "corpus: %d store items, %d queries (%.0fs)",
        len(items),
        len(queries),
        time.perf_counter() - t0,
    )

    encoder = SentenceEncoder()
    vecs, enc_meta = encode_cached(encoder, [it.text for it in items], cache_dir, "store")
    qvecs, q_meta = encode_cached(encoder, [it.text for it in queries], cache_dir, "queries")

    exact = DemonstrationStore(encoder, index="exact")
    t0 = time.perf_counter()
    exact.add_items(items, vecs)
    exact_build = time.perf_counter() - t0

    hnsw = DemonstrationStore(encoder, index="hnsw", hnsw_m=32, ef_construction=200, ef_search=128)
    hnsw.add_items(items, vecs)
    t0 = time.perf_counter()
    hnsw.build_index()
    hnsw_build = time.perf_counter() - t0
    _log.info("hnsw index built in %.1fs", hnsw_build)
    auto = DemonstrationStore(encoder)
    auto.add_items(items[:10], vecs[:10])
    auto_small = auto.index_type
    auto.add_items(items[10:], vecs[10:])

    # Exact search must equal brute force.
    sample = qvecs[:50]
    brute = np.argsort(-(sample @ vecs.T), axis=1, kind="stable")[:, :10]
    got = [[exact._ids[h.id] for h in hits] for hits in exact.search_vectors(sample, k=10)]
    assert all(list(b) == g for b, g in zip(brute, got, strict=True)), "exact != brute force"

    result: dict[str, Any] = {
        "description": __doc__.split("\n\n")[0],
        "machine": {
            "cpu_threads_used": args.threads,
            "os_cpu_count": os.cpu_count(),
            "note": "2-core machine shared with another job (nice 15); timings are indicative",
        },
        "encoder": encoder.describe(),
        "corpus": desc,
        "auto_index": {
            "threshold_items": AUTO_ANN_THRESHOLD,
            "type_at_10_items": auto_small,
            "type_at_store_size": auto.index_type,
        },
        "build": {
            "encoding": enc_meta,
            "query_encoding": q_meta,
            "exact_index_seconds": round(exact_build, 3),
            "hnsw_index_seconds": round(hnsw_build, 1),
            "hnsw_params": {"M": 32, "efConstruction": 200, "metric": "inner product"},
            "library": f"faiss-cpu {faiss.__version__}",
        },
    }

    n_lat = min(args.latency_queries, len(qvecs))
    ks = (3, 10)
    exact_ids = {k: [[h.id for h in hs] for hs in exact.search_vectors(qvecs, k=k)] for k in ks}
    result["exact"] = {
        "batch1_latency_k10": _latency(
            lambda i: exact.search_vectors(qvecs[i : i + 1], k=10), n_lat
        ),
        "batched_throughput_k10": _throughput(exact, qvecs, 10),
    }
    _log.info("exact: %s", result["exact"])
    sweep = []
    for ef in (16, 32, 64, 128, 256):
        hnsw.ef_search = ef
        approx = {k: [[h.id for h in hs] for hs in hnsw.search_vectors(qvecs, k=k)] for k in ks}
        entry = {
            "efSearch": ef,
            "recall_at_3": round(_recall(exact_ids[3], approx[3], 3), 4),
            "recall_at_10": round(_recall(exact_ids[10], approx[10], 10), 4),
            "batch1_latency_k10": _latency(
                lambda i: hnsw.search_vectors(qvecs[i : i + 1], k=10), n_lat
            ),
            "batched_throughput_k10": _throughput(hnsw, qvecs, 10),
        }
        sweep.append(entry)
        _log.info("hnsw: %s", entry)
    result["hnsw_sweep"] = sweep
    default = next(e for e in sweep if e["efSearch"] == 128)
    result["hnsw_default"] = default

    texts = [it.text for it in queries[:200]]
    hnsw.ef_search = 128
    result["end_to_end_text_query"] = {
        "what": "DemonstrationStore.search(text, k=3) incl. encoding the query, HNSW efSearch=128",
        **_latency(lambda i: hnsw.search(texts[i], k=3), len(texts)),
    }
    result["summary"] = {
        "store_items": len(items),
        "held_out_queries": len(queries),
        "encode_seconds": enc_meta["encode_seconds"],
        "hnsw_build_seconds": round(hnsw_build, 1),
        "exact_median_ms_batch1": result["exact"]["batch1_latency_k10"]["median_ms"],
        "exact_p95_ms_batch1": result["exact"]["batch1_latency_k10"]["p95_ms"],
        "hnsw_median_ms_batch1": default["batch1_latency_k10"]["median_ms"],
        "hnsw_p95_ms_batch1": default["batch1_latency_k10"]["p95_ms"],
        "exact_batched_qps": result["exact"]["batched_throughput_k10"]["queries_per_second"],
        "hnsw_batched_qps": default["batched_throughput_k10"]["queries_per_second"],
        "hnsw_recall_at_3": default["recall_at_3"],
        "hnsw_recall_at_10": default["recall_at_10"],
    }
    write_json(args.out, result)
    _log.info("wrote %s: %s", args.out, result["summary"])


if __name__ == "__main__":
    main()
