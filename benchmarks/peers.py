"""Compare emoscope's recognisers with peer tools (NRCLex, VADER) on two test sets.

For every recogniser and both datasets — MELD test (``meld`` taxonomy, dialogues read in order)
and GoEmotions test with its labels grouped into Ekman's seven by the official GoEmotions
mapping — the script runs :func:`emoscope.evaluate.evaluate` once for the metrics (weighted-F1,
macro-F1, accuracy) and then times whole-split prediction ``--repeats`` more times (wall clock,
the median gives the throughput). Results go to ``benchmarks/results/peers.json`` together with
how each dataset is scored, the machine, the package versions and the date; a Markdown table is
printed.

Peers: NRCLex (Bailey, 2019; NRC Word-Emotion Association Lexicon, Mohammad & Turney, 2013) and
VADER (Hutto & Gilbert, 2014); see :mod:`emoscope.recognizers.peers` for how their outputs
become emotion distributions.

    nice -n 15 python benchmarks/peers.py [--recognizers lexicon,nrclex,vader[,default]]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emoscope._io import write_json
from emoscope.datasets import Dataset, load_dataset
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.evaluate import EvalResult, evaluate
from emoscope.recognizers import Recognizer, load_recognizer
from emoscope.recognizers.default import default_recognizer_name

__all__ = ["DATASETS", "default_recognizers", "main", "run"]

OUT = Path(__file__).resolve().parent / "results" / "peers.json"
BATCH_SIZE = 64

# (key in the JSON, dataset name, split, taxonomy argument of load_dataset)
DATASETS: tuple[tuple[str, str, str, str | None], ...] = (
    ("meld-test", "meld", "test", None),
    ("goemotions-ekman-test", "goemotions", "test", "ekman"),
)

SCORING = {
    "meld-test": (
        "Single-label. Each prediction is mapped into the meld taxonomy (row-stochastic mapping "
        "matrix: identity for ekman, official GoEmotions->Ekman->MELD grouping for goemotions, "
        "VAD-nearest label for plutchik) and scored on its top label. accuracy = fraction of "
        "utterances whose top label equals the gold label; per-label F1 as scikit-learn with "
        "zero_division=0; weighted_f1 weights each label's F1 by its gold support; macro_f1 is "
        "the unweighted mean over all 7 labels. Dialogues are passed whole, so recognisers that "
        "use context see the preceding turns."
    ),
    "goemotions-ekman-test": (
        "Multi-label. Gold: each comment's GoEmotions labels mapped by the official GoEmotions->"
        "Ekman grouping, repeats merged, so a comment has a set of 1-3 Ekman labels "
        "(see n_multi_label_gold). evaluate() scores the whole split as multi-label: a "
        "single-label recogniser predicts the set {top label of its prediction mapped into "
        "ekman}, a multi-label recogniser the set of its mapped predicted labels. "
        "accuracy is exact set match (subset accuracy), so a comment with two gold labels can "
        "never be counted correct for a single-label prediction (max_accuracy_single_label "
        "gives the ceiling). Per-label precision/recall/F1 count label membership (true "
        "positive = label in both sets); weighted_f1 weights by how many comments carry each "
        "gold label; macro_f1 is the unweighted mean over the 7 labels. No confusion matrix "
        "or calibration in multi-label mode."
    ),
}


def default_recognizers() -> list[str]:
    """The three baselines, plus ``default`` once the shipped model can be loaded."""
    names = ["lexicon", "nrclex", "vader"]
    if default_recognizer_name() == "default":
        names.append("default")
    return names


def _batches(inputs: Sequence[str | Dialogue], size: int) -> Iterator[list[str | Dialogue]]:
    """Batches of about ``size`` utterances, dialogues kept whole (as ``evaluate`` does)."""
    batch: list[str | Dialogue] = []
    count = 0
    for x in inputs:
        batch.append(x)
        count += len(x) if isinstance(x, Dialogue) else 1
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


def time_prediction(recognizer: Recognizer, dataset: Dataset, repeats: int) -> list[float]:
    """Wall-clock seconds of predicting the whole split, once per repeat."""
    inputs = dataset.inputs()
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = 0
        for batch in _batches(inputs, BATCH_SIZE):
            n += len(recognizer.predict(batch))
        times.append(time.perf_counter() - start)
        if n != len(dataset.examples):
            raise EmoscopeError(
                f"{recognizer.name} returned {n} predictions for {len(dataset.examples)} examples"
            )
    return times


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("emoscope", "numpy", "NRCLex", "vaderSentiment", "torch", "transformers"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _loadavg() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """CPU count, torch threads, Python and platform, niceness and load average."""
    try:
        torch: Any = importlib.import_module("torch")
        torch_threads: int | None = int(torch.get_num_threads())
    except ImportError:
        torch_threads = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        ),
        "torch_threads": torch_threads,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "niceness": os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None,
        "loadavg_1min_at_start": _loadavg(),
    }


def _entry(result: EvalResult, dataset: Dataset, times: list[float]) -> dict[str, Any]:
    cls = result.classification or {}
    median = statistics.median(times)
    n_multi = sum(1 for e in dataset.examples if len(e.labels) > 1)
    entry: dict[str, Any] = {
        "recognizer": result.recognizer,
        "recognizer_taxonomy": result.recognizer_taxonomy,
        "dataset": result.dataset,
        "split": result.split,
        "taxonomy": result.taxonomy,
        "n": result.n,
        "mapping": result.mapping,
        "multi_label_scoring": bool(cls.get("multi_label", False)),
        "weighted_f1": cls.get("weighted_f1"),
        "macro_f1": cls.get("macro_f1"),
        "accuracy": cls.get("accuracy"),
        "micro_f1": cls.get("micro_f1"),
        "per_label_f1": {k: v["f1"] for k, v in (cls.get("per_label") or {}).items()},
        "texts_per_second": result.n / median,
        "seconds_per_repeat": [round(t, 4) for t in times],
        "predict_seconds_in_evaluate": round(result.seconds, 4),
        "n_multi_label_gold": n_multi,
        "max_accuracy_single_label": (result.n - n_multi) / result.n,
    }
    if result.calibration is not None:
        entry["ece"] = result.calibration["ece"]
        entry["brier"] = result.calibration["brier"]
    return entry


def run(
    recognizers: Sequence[str],
    *,
    repeats: int = 3,
    root: str | Path | None = None,
    limit: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Evaluate and time every recogniser on every dataset; return the JSON-ready results."""
    if repeats < 1:
        raise EmoscopeError(f"--repeats must be at least 1, got {repeats}")
    started = datetime.now(UTC)
    machine_at_start = machine_info()
    datasets = {
        key: load_dataset(name, split, root=root, taxonomy=tax).limit(limit)
        for key, name, split, tax in DATASETS
    }
    results: list[dict[str, Any]] = []
    load_seconds: dict[str, float] = {}
    for name in recognizers:
        start = time.perf_counter()
        rec = load_recognizer(name)
        load_seconds[name] = round(time.perf_counter() - start, 3)
        for key, ds in datasets.items():
            result = evaluate(rec, ds, batch_size=BATCH_SIZE, progress=False)
            times = time_prediction(rec, ds, repeats)
            entry = {"recognizer_name": name, "benchmark": key, **_entry(result, ds, times)}
            results.append(entry)
            log(
                f"{name:>8} {key:<22} weighted-F1 {entry['weighted_f1']:.4f} "
                f"macro-F1 {entry['macro_f1']:.4f} acc {entry['accuracy']:.4f} "
                f"{entry['texts_per_second']:.0f} texts/s"
            )
    machine = {**machine_at_start, "loadavg_1min_at_end": _loadavg()}
    return {
        "description": (
            "emoscope recognisers vs peer tools on MELD test and GoEmotions test (Ekman "
            "grouping); metrics from one evaluate() run, throughput = n / median wall-clock "
            f"seconds of {repeats} whole-split prediction passes made after that run, "
            f"batches of about {BATCH_SIZE} utterances, one process"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeats": repeats,
        "limit": limit,
        "scoring": {key: SCORING[key] for key in datasets},
        "machine": machine,
        "versions": _versions(),
        "load_seconds": load_seconds,
        "results": results,
    }


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| recogniser | dataset | n | mapping | weighted-F1 | macro-F1 | accuracy | texts/s |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['recognizer_name']} | {r['benchmark']} | {r['n']} | {r['mapping']} | "
            f"{r['weighted_f1']:.3f} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | "
            f"{r['texts_per_second']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--recognizers",
        default=None,
        help="comma-separated recogniser names (default: lexicon,nrclex,vader, plus default "
        "when the shipped model is installed)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed prediction passes (median)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output JSON (default: {OUT})")
    ap.add_argument("--root", default=None, help="data root (default: emoscope's data root)")
    ap.add_argument("--limit", type=int, default=None, help="first N examples only (smoke runs)")
    args = ap.parse_args(argv)
    names = (
        default_recognizers()
        if args.recognizers is None
        else [n.strip() for n in args.recognizers.split(",") if n.strip()]
    )
    if not names:
        raise SystemExit("error: --recognizers is empty; expected e.g. lexicon,nrclex,vader")
    try:
        report = run(names, repeats=args.repeats, root=args.root, limit=args.limit)
    except EmoscopeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(args.out, report)
    print(markdown_table(report))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
