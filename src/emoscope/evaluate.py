"""Evaluate a recogniser on a labelled dataset: label, calibration and VAD metrics.

The recogniser's predictions are mapped into the dataset's taxonomy when the two differ (see
:func:`map_prediction`), so e.g. a GoEmotions recogniser can be scored on MELD.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tqdm import tqdm

from emoscope import metrics
from emoscope._version import __version__
from emoscope._views import MappedRecognizer, route
from emoscope.datasets.base import Dataset
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.labels import map_prediction, map_vector
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Recognizer

__all__ = ["EvalResult", "evaluate", "map_prediction"]

N_BINS = 10


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`. ``to_dict()`` gives the JSON written to ``report.json``.

    Attributes:
        recognizer: the recogniser's name.
        recognizer_taxonomy: the taxonomy of the recogniser's labels.
        dataset: dataset name.
        split: dataset split.
        taxonomy: the dataset's taxonomy (``None`` for VAD-only data).
        limit: the example limit applied, if any.
        n: number of examples scored.
        mapping: how predictions were mapped into the dataset taxonomy (``"identity"``,
            ``"official:goemotions->ekman->meld"``, ``"vad-nearest"``); ``None`` without labels.
        classification: :func:`emoscope.metrics.classification_report` of the label predictions.
        labels: the dataset taxonomy's labels, the row/column order of ``confusion``.
        confusion: confusion matrix (rows gold, columns predicted) for single-label data.
        calibration: ``ece``, ``brier``, ``n_bins`` and reliability ``bins`` (single-label data).
        vad: :func:`emoscope.metrics.vad_report` plus ``n`` when gold and predicted VAD exist.
        parse_failures: predictions whose cues say ``parse_failed`` (LLM recognisers).
        notes: why some metrics are missing (e.g. gold VAD but no predicted VAD).
        skipped: malformed rows the dataset reader skipped.
        seconds: wall time spent in ``predict``.
        texts_per_second: throughput of ``predict``.
        version: emoscope version.
        timestamp: when the evaluation finished (UTC, ISO 8601).
    """

    recognizer: str
    recognizer_taxonomy: str
    dataset: str
    split: str
    taxonomy: str | None
    limit: int | None
    n: int
    mapping: str | None = None
    classification: dict[str, Any] | None = None
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    calibration: dict[str, Any] | None = None
    vad: dict[str, Any] | None = None
    parse_failures: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    texts_per_second: float = 0.0
    version: str = ""
    timestamp: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (numpy values become Python numbers and lists)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        # JSON has no NaN/inf; null says "undefined" (e.g. a correlation of constant values).
        return v if math.isfinite(v) else None
    return x


def _batches(inputs: Sequence[str | Dialogue], size: int) -> Iterator[tuple[list[Any], int]]:
    """Group inputs into batches of about ``size`` utterances, never splitting a dialogue."""
    batch: list[str | Dialogue] = []
    count = 0
    for x in inputs:
        batch.append(x)
        count += len(x) if isinstance(x, Dialogue) else 1
        if count >= size:
            yield batch, count
            batch, count = [], 0
    if batch:
        yield batch, count


def _predict_all(
    recognizer: Recognizer, dataset: Dataset, batch_size: int, progress: bool
) -> tuple[list[EmotionPrediction], float]:
    preds: list[EmotionPrediction] = []
    seconds = 0.0
    bar = tqdm(
        total=len(dataset.examples),
        desc=f"{recognizer.name} on {dataset.name}/{dataset.split}",
        unit="utt",
        file=sys.stderr,
        disable=not progress,
    )
    with bar:
        for batch, expected in _batches(dataset.inputs(), batch_size):
            start = time.perf_counter()
            out = recognizer.predict(batch)
            seconds += time.perf_counter() - start
            if len(out) != expected:
                raise EmoscopeError(
                    f"recogniser {recognizer.name!r} returned {len(out)} predictions for a batch "
                    f"of {expected} utterances"
                )
            preds.extend(out)
            bar.update(expected)
    if len(preds) != len(dataset.examples):
        raise EmoscopeError(
            f"dataset {dataset.name!r} has {len(dataset.examples)} examples but its inputs "
            f"yielded {len(preds)} utterances"
        )
    return preds, seconds


def evaluate(
    recognizer: Recognizer,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    progress: bool = True,
    limit: int | None = None,
) -> EvalResult:
    """Run ``recognizer`` over ``dataset`` and score its predictions.

    Args:
        recognizer: any :class:`~emoscope.recognizers.Recognizer`.
        dataset: a labelled split; conversational datasets are predicted dialogue by dialogue so
            each utterance is read in its context.
        batch_size: about how many utterances go to each ``predict`` call (dialogues are kept
            whole).
        progress: show a progress bar on stderr.
        limit: score only the first ``limit`` examples (whole dialogues, see
            :meth:`Dataset.limit`).

    Label metrics need gold labels: single-label data is scored on the top label of the
    prediction mapped into the dataset taxonomy, with a confusion matrix and calibration (ECE of
    the top mapped probability, Brier score of the mapped distribution); multi-label data is
    scored on predicted label sets (the mapped ``labels`` of a multi-label recogniser, else the
    top label alone). VAD metrics are computed when examples have gold VAD and predictions VAD.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    dataset = dataset.limit(limit)
    if not dataset.examples:
        raise EmoscopeError(f"dataset {dataset.name!r} ({dataset.split}) has no examples")

    # The dataset's taxonomy is answered the way every front-end answers it; predictions that
    # still need mapping are mapped (and the method recorded) when scored.
    routed = route(recognizer, dataset.taxonomy)
    if isinstance(routed, MappedRecognizer):
        routed = recognizer
    preds, seconds = _predict_all(routed, dataset, batch_size, progress)
    n = len(preds)
    result = EvalResult(
        recognizer=recognizer.name,
        recognizer_taxonomy=recognizer.taxonomy.name,
        dataset=dataset.name,
        split=dataset.split,
        taxonomy=None if dataset.taxonomy is None else dataset.taxonomy.name,
        limit=limit,
        n=n,
        parse_failures=sum(1 for p in preds if p.cues.get("parse_failed") is True),
        skipped=dataset.skipped,
        seconds=seconds,
        texts_per_second=n / seconds if seconds > 0 else float("inf"),
        version=__version__,
    )
    if dataset.taxonomy is not None:
        _score_labels(result, dataset, preds)
    _score_vad(result, dataset, preds)
    result.timestamp = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def _score_labels(result: EvalResult, dataset: Dataset, preds: list[EmotionPrediction]) -> None:
    tax = dataset.taxonomy
    assert tax is not None
    scored = [(e, p) for e, p in zip(dataset.examples, preds, strict=True) if e.labels]
    if not scored:
        return
    methods: dict[str, None] = {}
    dists: list[np.ndarray] = []
    pred_sets: list[tuple[str, ...]] = []
    for _, pred in scored:
        q, labels, method = map_vector(pred, tax)
        methods.setdefault(method, None)
        dists.append(q)
        pred_sets.append(labels)
    result.mapping = ", ".join(methods)
    result.labels = list(tax.labels)
    probs = np.vstack(dists)
    top = [tax.labels[i] for i in probs.argmax(axis=1)]

    # A file read with several labels per text is multi-label whatever its taxonomy says.
    if dataset.multi_label or any(len(e.labels) > 1 for e, _ in scored):
        y_true: list[Any] = [list(e.labels) for e, _ in scored]
        y_pred: list[Any] = [
            list(s) if p.multi_label else [t]
            for (_, p), s, t in zip(scored, pred_sets, top, strict=True)
        ]
        result.classification = metrics.classification_report(y_true, y_pred, list(tax.labels))
        return

    gold = [e.labels[0] for e, _ in scored]
    result.classification = metrics.classification_report(gold, top, list(tax.labels))
    result.confusion = np.asarray(
        metrics.confusion_matrix(gold, top, list(tax.labels)), dtype=int
    ).tolist()

    # Multi-label heads give independent probabilities; normalise them into a distribution.
    totals = probs.sum(axis=1, keepdims=True)
    dist = np.where(totals > 0, probs / np.where(totals > 0, totals, 1.0), 1.0 / len(tax))
    dist = np.clip(dist, 0.0, 1.0)
    confidence = dist.max(axis=1)
    correct = np.array([t == g for t, g in zip(top, gold, strict=True)], dtype=float)
    targets = np.array([tax.index(g) for g in gold])
    result.calibration = {
        "ece": float(metrics.expected_calibration_error(confidence, correct, n_bins=N_BINS)),
        "brier": float(metrics.brier_score(dist, targets)),
        "n_bins": N_BINS,
        "mean_confidence": float(confidence.mean()),
        "accuracy": float(correct.mean()),
        "bins": _jsonable(metrics.reliability_bins(confidence, correct, n_bins=N_BINS)),
    }


def _score_vad(result: EvalResult, dataset: Dataset, preds: list[EmotionPrediction]) -> None:
    pairs = [
        (e.vad, p.vad)
        for e, p in zip(dataset.examples, preds, strict=True)
        if e.vad is not None and p.vad is not None
    ]
    if len(pairs) < 2:  # correlations need two points
        if dataset.has_vad:
            result.notes.append(
                f"the dataset has gold VAD but only {len(pairs)} predictions carry VAD; "
                "no VAD metrics"
            )
        return
    gold = np.array([g for g, _ in pairs], dtype=float)
    pred = np.array([p for _, p in pairs], dtype=float)
    report = metrics.vad_report(gold, pred)
    result.vad = {"n": len(pairs), **_jsonable(report)}
