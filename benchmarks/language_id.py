"""py3langid against lingua-language-detector: accuracy and speed on the texts emoscope reads.

    python benchmarks/language_id.py [--n 300]

Writes ``benchmarks/results/language_id.json``. Texts: ``--n`` English MELD dev utterances
(short subtitles: the hard case, a false "not English" warning there is the cost users see),
``--n`` English GoEmotions dev comments, and EmoBench's English and Chinese scenarios (EU, up to
``--n`` each). Dev splits, because the threshold of emoscope's rule was chosen looking at the
first 300 test texts of MELD and GoEmotions. Reported per detector: accuracy of the language
code, the share of English texts flagged as not English (false warnings), load time and
microseconds per text, each measured in this one run (medians of 3 passes). emoscope's own rule
(:func:`emoscope.language.detect`) is scored the same way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import machine_info
from emoscope._io import write_json
from emoscope.datasets import load_dataset
from emoscope.datasets.emobench import load_emobench


def _timed(fn: Callable[[str], str | None], texts: list[str]) -> tuple[list[str | None], float]:
    runs = []
    out: list[str | None] = []
    for _ in range(3):
        t = time.perf_counter()
        out = [fn(x) for x in texts]
        runs.append(time.perf_counter() - t)
    return out, statistics.median(runs) / len(texts) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results/language_id.json")
    args = ap.parse_args()
    load0 = os.getloadavg()
    texts: list[tuple[str, str, str]] = []  # (source, gold, text)
    texts += [("meld", "en", e.text) for e in load_dataset("meld", "dev").examples[: args.n]]
    texts += [
        ("goemotions", "en", e.text) for e in load_dataset("goemotions", "dev").examples[: args.n]
    ]
    for lang in ("en", "zh"):
        items = load_emobench("EU", language=lang)[: args.n]
        texts += [(f"emobench_{lang}", lang, it.scenario) for it in items]
    plain = [t for _, _, t in texts]

    detectors: dict[str, tuple[float, Callable[[str], str | None]]] = {}
    t = time.perf_counter()
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.classify("warm up")
    detectors["py3langid"] = (time.perf_counter() - t, lambda s: str(ident.classify(s)[0]))
    t = time.perf_counter()
    from lingua import LanguageDetectorBuilder

    lingua = LanguageDetectorBuilder.from_all_languages().build()
    lingua.detect_language_of("warm up")

    def lingua_code(s: str) -> str | None:
        lang = lingua.detect_language_of(s)
        return None if lang is None else lang.iso_code_639_1.name.lower()

    detectors["lingua-language-detector"] = (time.perf_counter() - t, lingua_code)
    t = time.perf_counter()
    from emoscope.language import detect

    detect("warm up")
    detectors["emoscope.language.detect (py3langid + rules)"] = (
        time.perf_counter() - t,
        lambda s: detect(s).language,
    )

    results: dict[str, Any] = {}
    for name, (load_s, fn) in detectors.items():
        pred, us = _timed(fn, plain)
        per_source: dict[str, Any] = {}
        for src in dict.fromkeys(s for s, _, _ in texts):
            rows = [(g, p) for (s, g, _), p in zip(texts, pred, strict=True) if s == src]
            per_source[src] = {
                "n": len(rows),
                "accuracy": round(sum(g == p for g, p in rows) / len(rows), 4),
                "flagged_not_english": round(
                    sum(p not in ("en", None) for _, p in rows) / len(rows), 4
                ),
            }
        english = [(g, p) for (_, g, _), p in zip(texts, pred, strict=True) if g == "en"]
        results[name] = {
            "load_seconds": round(load_s, 3),
            "microseconds_per_text": round(us, 1),
            "accuracy": round(
                sum(g == p for (_, g, _), p in zip(texts, pred, strict=True)) / len(texts), 4
            ),
            "english_flagged_not_english": round(
                sum(p not in ("en", None) for _, p in english) / len(english), 4
            ),
            "per_source": per_source,
        }
    write_json(
        args.out,
        {
            "n_texts": len(texts),
            "results": results,
            "machine": machine_info(
                load0, "2 shared cores; other engineers' jobs ran at the same time"
            ),
        },
    )
    for name, r in results.items():
        print(
            name,
            r["accuracy"],
            r["english_flagged_not_english"],
            r["microseconds_per_text"],
            r["load_seconds"],
        )


if __name__ == "__main__":
    main()
