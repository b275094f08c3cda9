"""Build emoscope's shipped lexicon (``src/emoscope/data/lexicon_v1.npz``).

The word-label associations come from the GoEmotions train split and the word VAD means from the
EmoBank train split; nothing else is read for training. ``--tune`` first runs a small grid over
the knobs (min_count, smoothing, prior weight, negation marking) scored on the GoEmotions dev
split, picks the temperature that minimises the dev negative log-likelihood, and reports MELD
dev after mapping GoEmotions -> Ekman -> MELD. Test splits are never read.

Usage (from the project root)::

    python benchmarks/build_lexicon.py                    # build with the tuned defaults
    python benchmarks/build_lexicon.py --tune             # grid on dev, then build the best
    python benchmarks/build_lexicon.py --data-dir ../shared/data --out /tmp/lexicon.npz

Knob values tried and the scores seen are printed by ``--tune``; the chosen ones are DEFAULTS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoscope.datasets import load_dataset
from emoscope.labels import get_taxonomy, map_distribution
from emoscope.recognizers.lexicon import LexiconRecognizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "emoscope" / "data" / "lexicon_v1.npz"

# Chosen with --tune on GoEmotions dev (see the report printed by --tune).
DEFAULTS: dict[str, object] = {
    "min_count": 5,
    "smoothing": 0.25,
    "prior_weight": 0.01,
    "negation": True,
    "temperature": 0.4,
    "vad_min_count": 1,
    "vad_shrinkage": 5.0,
    "calibrate_vad": True,
}


# A zero weight leaves texts without known words at a uniform tie, so the grid starts above it.
PRIOR_WEIGHTS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
TEMPERATURES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0)


@dataclass
class Split:
    texts: list[str]
    labels: list[tuple[str, ...]]


def read_labelled(name: str, split: str, data: Path | None) -> Split:
    """Texts and gold label sets of a split read by emoscope's dataset readers."""
    ds = load_dataset(name, split, data)
    return Split([e.text for e in ds.examples], [e.labels for e in ds.examples])


def read_emobank(data: Path | None, split: str) -> tuple[list[str], np.ndarray]:
    """EmoBank texts of one split with their VAD on [-1, 1]."""
    ds = load_dataset("emobank", split, data)
    return [e.text for e in ds.examples], np.array([e.vad for e in ds.examples], dtype=float)


def macro_f1_top(
    pred: Sequence[str], gold: Sequence[tuple[str, ...]], labels: Sequence[str]
) -> float:
    """Macro-F1 over ``labels`` of one predicted label per text against gold label sets."""
    f1s = []
    for lab in labels:
        tp = sum(p == lab and lab in g for p, g in zip(pred, gold, strict=True))
        fp = sum(p == lab and lab not in g for p, g in zip(pred, gold, strict=True))
        fn = sum(p != lab and lab in g for p, g in zip(pred, gold, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


def hit_rate(pred: Sequence[str], gold: Sequence[tuple[str, ...]]) -> float:
    """Share of texts whose predicted label is one of the gold labels."""
    return float(np.mean([p in g for p, g in zip(pred, gold, strict=True)]))


def log_prior(labels: Sequence[tuple[str, ...]], names: Sequence[str]) -> np.ndarray:
    """Log share of training texts carrying each label (as :meth:`LexiconRecognizer.fit`)."""
    counts = np.array([sum(n in g for g in labels) for n in names], dtype=float)
    return np.asarray(np.log(np.maximum(counts, 0.5) / len(labels)))


def softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def nll_any_gold(
    probs: np.ndarray, gold: Sequence[tuple[str, ...]], labels: Sequence[str]
) -> float:
    """Mean -log P(some gold label) of a batch of distributions."""
    idx = {lab: i for i, lab in enumerate(labels)}
    p = [probs[r, [idx[g] for g in gs]].sum() for r, gs in enumerate(gold)]
    return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def ece_top(probs: np.ndarray, gold: Sequence[tuple[str, ...]], labels: Sequence[str]) -> float:
    """Expected calibration error of the top probability (10 equal-width bins)."""
    conf = probs.max(axis=1)
    correct = np.array(
        [labels[int(i)] in g for i, g in zip(probs.argmax(axis=1), gold, strict=True)], dtype=float
    )
    bins = np.minimum((conf * 10).astype(int), 9)
    return float(
        sum(
            abs(conf[bins == b].mean() - correct[bins == b].mean()) * (bins == b).mean()
            for b in range(10)
            if (bins == b).any()
        )
    )


def meld_scores(rec: LexiconRecognizer, meld: Split) -> tuple[float, float]:
    """MELD macro-F1 and accuracy after mapping GoEmotions -> Ekman -> MELD."""
    meld_labels = get_taxonomy("meld").labels
    pred = []
    for p in rec.predict(meld.texts):
        dist = map_distribution(p.probs, "goemotions", "meld")
        pred.append(max(dist, key=dist.__getitem__))
    return macro_f1_top(pred, meld.labels, meld_labels), hit_rate(pred, meld.labels)


def vad_scores(
    rec: LexiconRecognizer, texts: Sequence[str], gold: np.ndarray
) -> tuple[list[float], list[float]]:
    """Pearson r and concordance correlation (CCC) per VAD dimension, predicted vs gold."""
    pred = np.array([p.vad for p in rec.predict(texts)])
    r, c = [], []
    for k in range(3):
        x, y = pred[:, k], gold[:, k]
        r.append(float(np.corrcoef(x, y)[0, 1]))
        cov = float(np.mean((x - x.mean()) * (y - y.mean())))
        c.append(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))
    return r, c


def fit(data: Path | None, **knobs: object) -> LexiconRecognizer:
    """Train on the GoEmotions and EmoBank train splits with the given knobs."""
    train = read_labelled("goemotions", "train", data)
    vad_texts, vad_values = read_emobank(data, "train")
    return LexiconRecognizer.fit(
        train.texts,
        train.labels,
        vad_texts,
        vad_values,
        training_data={
            "labels": f"GoEmotions train ({len(train.texts)} texts; Demszky et al., 2020)",
            "vad": f"EmoBank train ({len(vad_texts)} texts; Buechel & Hahn, 2017), "
            "VAD mapped from 1-5 to [-1, 1]",
        },
        **knobs,  # type: ignore[arg-type]
    )


def tune(data: Path | None) -> dict[str, object]:
    """Grid-search the knobs on GoEmotions dev; return the best setting."""
    train = read_labelled("goemotions", "train", data)
    dev = read_labelled("goemotions", "dev", data)
    labels = get_taxonomy("goemotions").labels
    lp = log_prior(train.labels, labels)
    rows = []
    print("min_count smoothing negation prior_weight | dev macro-F1  hit-rate")
    for min_count, smoothing, negation in itertools.product(
        (3, 5, 10), (0.05, 0.25, 0.5, 1.0), (False, True)
    ):
        rec = LexiconRecognizer.fit(
            train.texts,
            train.labels,
            min_count=min_count,
            smoothing=smoothing,
            negation=negation,
            prior_weight=0.0,
        )
        ev = np.stack([rec.scores(t) for t in dev.texts])
        for w in PRIOR_WEIGHTS:
            pred = [labels[i] for i in (ev + w * lp).argmax(axis=1)]
            f1 = macro_f1_top(pred, dev.labels, labels)
            hr = hit_rate(pred, dev.labels)
            rows.append((f1, min_count, smoothing, negation, w))
            print(
                f"{min_count:9d} {smoothing:9.2f} {negation!s:8} {w:12.2f} | {f1:12.4f} {hr:9.4f}"
            )
    best = max(rows)
    knobs: dict[str, object] = {
        **DEFAULTS,
        "min_count": best[1],
        "smoothing": best[2],
        "negation": best[3],
        "prior_weight": best[4],
    }
    print(f"best dev macro-F1 {best[0]:.4f} with {knobs}")

    rec = LexiconRecognizer.fit(
        train.texts,
        train.labels,
        **{k: v for k, v in knobs.items() if not k.startswith(("vad_", "calibrate"))},  # type: ignore[arg-type]
    )
    logits = np.stack([rec.scores(t) for t in dev.texts])
    print("temperature | dev NLL(any gold)  ECE(top)")
    temps = []
    for t in TEMPERATURES:
        probs = softmax_rows(logits / t)
        nll, ece = nll_any_gold(probs, dev.labels, labels), ece_top(probs, dev.labels, labels)
        temps.append((nll, t))
        print(f"{t:11.2f} | {nll:17.4f} {ece:8.4f}")
    knobs["temperature"] = min(temps)[1]

    vad_texts, vad_values = read_emobank(data, "train")
    dev_texts, dev_values = read_emobank(data, "dev")
    print("vad_min_count vad_shrinkage calibrate | EmoBank dev Pearson r (V, A, D)  CCC (V, A, D)")
    vad_rows = []
    for vmc, shrink, calibrate in itertools.product((1, 2, 3, 5), (0.0, 2.0, 5.0), (False, True)):
        rec = LexiconRecognizer.fit(
            train.texts,
            train.labels,
            vad_texts,
            vad_values,
            negation=bool(knobs["negation"]),
            vad_min_count=vmc,
            vad_shrinkage=shrink,
            calibrate_vad=calibrate,
        )
        r, c = vad_scores(rec, dev_texts, dev_values)
        vad_rows.append((float(np.mean(c)), vmc, shrink, calibrate))
        print(
            f"{vmc:13d} {shrink:13.1f} {calibrate!s:9} | {r[0]:.4f} {r[1]:.4f} {r[2]:.4f}"
            f"  {c[0]:.4f} {c[1]:.4f} {c[2]:.4f}"
        )
    best_vad = max(vad_rows)
    knobs["vad_min_count"], knobs["vad_shrinkage"] = best_vad[1], best_vad[2]
    knobs["calibrate_vad"] = best_vad[3]
    return knobs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding goemotions/, emobank/, meld/ (default: emoscope's data root, "
        "$EMOSCOPE_DATA or ../shared/data)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the lexicon")
    ap.add_argument("--tune", action="store_true", help="grid-search the knobs on dev first")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    knobs = tune(args.data_dir) if args.tune else dict(DEFAULTS)
    rec = fit(args.data_dir, **knobs)
    rec.save(args.out)
    size = args.out.stat().st_size

    dev = read_labelled("goemotions", "dev", args.data_dir)
    labels = get_taxonomy("goemotions").labels
    preds = rec.predict(dev.texts)
    top = [p.label for p in preds]
    probs = np.array([[p.probs[lab] for lab in labels] for p in preds])
    meld_f1, meld_acc = meld_scores(rec, read_labelled("meld", "dev", args.data_dir))
    eb_texts, eb_vad = read_emobank(args.data_dir, "dev")
    vad_r, vad_c = vad_scores(rec, eb_texts, eb_vad)
    summary = {
        "out": str(args.out),
        "bytes": size,
        "knobs": knobs,
        "words": len(rec.vocabulary),
        "goemotions_dev_macro_f1": round(macro_f1_top(top, dev.labels, labels), 4),
        "goemotions_dev_hit_rate": round(hit_rate(top, dev.labels), 4),
        "goemotions_dev_nll": round(nll_any_gold(probs, dev.labels, labels), 4),
        "goemotions_dev_ece": round(ece_top(probs, dev.labels, labels), 4),
        "meld_dev_macro_f1": round(meld_f1, 4),
        "meld_dev_accuracy": round(meld_acc, 4),
        "emobank_dev_pearson_vad": [round(x, 4) for x in vad_r],
        "emobank_dev_ccc_vad": [round(x, 4) for x in vad_c],
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
