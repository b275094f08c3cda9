"""Evaluation metrics: classification, VAD regression and calibration.

Everything here needs numpy only. The classification metrics follow scikit-learn's conventions
with ``zero_division=0`` and an explicit ``labels=`` list, so their numbers can be compared with
published results computed by scikit-learn:

* single-label data is a sequence of label strings, one per example;
* multi-label data is a sequence of collections (``set``, ``frozenset``, ``tuple``, ``list``) of
  label strings, one collection per example; an empty collection means "no label";
* every label that occurs must be one of ``labels``; an unknown label raises :class:`ValueError`
  (a typo in a label would otherwise silently lower the scores).

Bad input (mismatched lengths, no examples, wrong shapes, values out of range) raises
:class:`ValueError` with a message saying what was found and what was expected.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "accuracy",
    "bleu",
    "brier_score",
    "ccc",
    "classification_report",
    "confusion_matrix",
    "degenerate_share",
    "distinct_n",
    "expected_calibration_error",
    "is_degenerate",
    "pearson_r",
    "precision_recall_f1",
    "reliability_bins",
    "repeated_ngram_rate",
    "repetition_report",
    "rouge_l",
    "text_tokens",
    "vad_report",
]

LabelSeq = Sequence[str] | Sequence[Collection[str]]

VAD_DIMENSIONS = ("valence", "arousal", "dominance")


# --------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------


def _check_pair_lengths(a: Sequence[Any], b: Sequence[Any], names: tuple[str, str]) -> int:
    if len(a) != len(b):
        raise ValueError(f"{names[0]} and {names[1]} have different lengths: {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty; expected at least one example")
    return len(a)


def _is_multi_label(y: Sequence[Any], name: str) -> bool:
    """Whether ``y`` holds label collections (True) or label strings (False); rejects mixtures."""
    multi = not isinstance(y[0], str)
    for i, item in enumerate(y):
        if isinstance(item, str) == multi:
            first = "a collection of labels" if multi else "a label string"
            raise ValueError(
                f"{name} mixes single- and multi-label items: item 0 is {first} but item {i} is "
                f"{type(item).__name__} {item!r}"
            )
    return multi


def _as_label_sets(y: Sequence[Any], name: str) -> list[frozenset[str]]:
    sets = []
    for i, item in enumerate(y):
        if not isinstance(item, Collection):
            raise ValueError(
                f"item {i} of {name} is {type(item).__name__} {item!r}; expected a label string "
                "or a collection of label strings"
            )
        for label in item:
            if not isinstance(label, str):
                raise ValueError(
                    f"item {i} of {name} contains {type(label).__name__} {label!r}; "
                    "expected label strings"
                )
        sets.append(frozenset(item))
    return sets


def _label_kind(y_true: LabelSeq, y_pred: LabelSeq) -> bool:
    """Check lengths and that both sides are the same kind; return True for multi-label."""
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if isinstance(y, str):
            raise ValueError(f"{name} must be a sequence of labels, got the string {y!r}")
    _check_pair_lengths(y_true, y_pred, ("y_true", "y_pred"))
    multi_true = _is_multi_label(y_true, "y_true")
    multi_pred = _is_multi_label(y_pred, "y_pred")
    if multi_true != multi_pred:
        kinds = {True: "multi-label (collections)", False: "single-label (strings)"}
        raise ValueError(
            f"y_true is {kinds[multi_true]} but y_pred is {kinds[multi_pred]}; "
            "expected both of the same kind"
        )
    return multi_true


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    if isinstance(labels, str):
        raise ValueError(f"labels must be a sequence of label strings, got the string {labels!r}")
    if len(labels) == 0:
        raise ValueError("labels is empty; expected at least one label")
    index: dict[str, int] = {}
    for label in labels:
        if not isinstance(label, str):
            raise ValueError(f"labels must be strings, got {type(label).__name__} {label!r}")
        if label in index:
            raise ValueError(f"label {label!r} appears more than once in labels")
        index[label] = len(index)
    return index


def _unknown_label(label: str, name: str, index: dict[str, int]) -> ValueError:
    known = ", ".join(index)
    return ValueError(f"{name} contains the label {label!r}, which is not in labels ({known})")


def _indicator(
    y: Sequence[Any], multi: bool, index: dict[str, int], name: str
) -> npt.NDArray[np.bool_]:
    """Binary (n, n_labels) matrix: entry [i, j] says example i carries label j."""
    out = np.zeros((len(y), len(index)), dtype=bool)
    rows: Sequence[Collection[str]] = _as_label_sets(y, name) if multi else [(s,) for s in y]
    for i, row in enumerate(rows):
        for label in row:
            j = index.get(label)
            if j is None:
                raise _unknown_label(label, name, index)
            out[i, j] = True
    return out


def _as_1d_float(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _numeric_pair(
    x: npt.ArrayLike, y: npt.ArrayLike, min_n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a, b = _as_1d_float(x, "x"), _as_1d_float(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x and y have different lengths: {a.size} and {b.size}")
    if a.size < min_n:
        raise ValueError(f"x and y have {a.size} values; expected at least {min_n}")
    return a, b


def _safe_div(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def accuracy(y_true: LabelSeq, y_pred: LabelSeq) -> float:
    """Fraction of examples whose prediction is exactly right.

    Single-label (items are strings): ordinary accuracy. Multi-label (items are collections of
    strings): exact-match, i.e. subset, accuracy; an example counts as correct only when the
    predicted label set equals the true one (order and duplicates are ignored).

    Raises:
        ValueError: if the lengths differ, the input is empty, or the two sides are not the
            same kind.
    """
    multi = _label_kind(y_true, y_pred)
    if multi:
        true_sets = _as_label_sets(y_true, "y_true")
        pred_sets = _as_label_sets(y_pred, "y_pred")
        hits = sum(t == p for t, p in zip(true_sets, pred_sets, strict=True))
    else:
        hits = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    return hits / len(y_true)


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Single-label confusion matrix: entry ``[i, j]`` counts examples of ``labels[i]``
    predicted as ``labels[j]`` (rows are true labels, columns predicted labels).

    Raises:
        ValueError: if a label is not in ``labels`` (the message names it), the input is
            multi-label, empty, or the lengths differ.
    """
    index = _label_index(labels)
    if _label_kind(y_true, y_pred):
        raise ValueError("confusion_matrix needs single-label input (one label string per item)")
    out = np.zeros((len(index), len(index)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t not in index:
            raise _unknown_label(t, "y_true", index)
        if p not in index:
            raise _unknown_label(p, "y_pred", index)
        out[index[t], index[p]] += 1
    return out


def _counts(
    y_true: LabelSeq, y_pred: LabelSeq, labels: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], bool]:
    """Per-label true positives, false positives and false negatives, and the multi-label flag."""
    index = _label_index(labels)
    multi = _label_kind(y_true, y_pred)
    t = _indicator(y_true, multi, index, "y_true")
    p = _indicator(y_pred, multi, index, "y_pred")
    tp = (t & p).sum(axis=0).astype(np.int64)
    fp = (~t & p).sum(axis=0).astype(np.int64)
    fn = (t & ~p).sum(axis=0).astype(np.int64)
    return tp, fp, fn, multi


def _prf_table(
    labels: Sequence[str],
    tp: npt.NDArray[np.int64],
    fp: npt.NDArray[np.int64],
    fn: npt.NDArray[np.int64],
) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for j, label in enumerate(labels):
        a, b, c = int(tp[j]), int(fp[j]), int(fn[j])
        table[label] = {
            "precision": _safe_div(a, a + b),
            "recall": _safe_div(a, a + c),
            # 2tp / (2tp + fp + fn) equals the harmonic mean of precision and recall whenever
            # that is defined, and gives 0 (not a division error) when it is not.
            "f1": _safe_div(2 * a, 2 * a + b + c),
            "support": a + c,
        }
    return table


def precision_recall_f1(
    y_true: LabelSeq, y_pred: LabelSeq, labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label, single- or multi-label.

    Returns ``{label: {"precision", "recall", "f1", "support"}}`` in the order of ``labels``;
    ``support`` is the (integer) number of examples that truly carry the label. A ratio whose
    denominator is zero is 0.0, like scikit-learn's ``zero_division=0``.

    Raises:
        ValueError: on an unknown label, mismatched lengths, empty input or mixed kinds.
    """
    tp, fp, fn, _ = _counts(y_true, y_pred, labels)
    return _prf_table(labels, tp, fp, fn)


def classification_report(
    y_true: LabelSeq, y_pred: LabelSeq, labels: Sequence[str]
) -> dict[str, Any]:
    """Summary scores for a classification run.

    Keys:
        ``accuracy``: :func:`accuracy` (exact-match for multi-label);
        ``macro_f1``: unweighted mean of per-label F1 over all of ``labels``, including labels
        with zero support (as scikit-learn with ``labels=``);
        ``weighted_f1``: mean of per-label F1 weighted by support (0.0 if nothing has support);
        ``micro_f1``: F1 of the true/false positives and false negatives pooled over all labels
        (for single-label data this equals ``accuracy``);
        ``per_label``: :func:`precision_recall_f1`;
        ``n``: number of examples;
        ``multi_label``: whether the input was multi-label.

    Raises:
        ValueError: on an unknown label, mismatched lengths, empty input or mixed kinds.
    """
    tp, fp, fn, multi = _counts(y_true, y_pred, labels)
    per_label = _prf_table(labels, tp, fp, fn)
    f1 = np.array([row["f1"] for row in per_label.values()])
    support = (tp + fn).astype(np.float64)
    total_tp = int(tp.sum())
    return {
        "accuracy": accuracy(y_true, y_pred),
        "weighted_f1": _safe_div(float(f1 @ support), float(support.sum())),
        "macro_f1": float(f1.mean()),
        "micro_f1": _safe_div(2 * total_tp, 2 * total_tp + int(fp.sum()) + int(fn.sum())),
        "per_label": per_label,
        "n": len(y_true),
        "multi_label": multi,
    }


# --------------------------------------------------------------------------------------------
# Regression (VAD)
# --------------------------------------------------------------------------------------------


def pearson_r(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation coefficient of two 1-D arrays of equal length (at least 2).

    The correlation is undefined when either input is constant; this returns ``nan`` in that
    case (as :func:`scipy.stats.pearsonr` does) rather than raising, so that one constant VAD
    dimension does not abort a whole report.

    Raises:
        ValueError: on shape or length mismatch, fewer than 2 values, or non-finite values.
    """
    a, b = _numeric_pair(x, y, min_n=2)
    # Test for exact constancy: after centring, rounding can leave tiny non-zero residues.
    if np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    r = float(da @ db) / math.sqrt(float(da @ da) * float(db @ db))
    return max(-1.0, min(1.0, r))


def ccc(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Lin's concordance correlation coefficient of two 1-D arrays of equal length (at least 2).

    ``2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)`` with population (``ddof=0``)
    variances and covariance (Lin, 1989). Unlike Pearson's r it penalises shifts and scale
    differences: 1 means ``y == x`` exactly. Returns ``nan`` when the denominator is zero, which
    happens only if both inputs are the same constant.

    Raises:
        ValueError: on shape or length mismatch, fewer than 2 values, or non-finite values.
    """
    a, b = _numeric_pair(x, y, min_n=2)
    ma, mb = a.mean(), b.mean()
    cov = float(np.mean((a - ma) * (b - mb)))
    den = float(a.var() + b.var() + (ma - mb) ** 2)
    if den == 0.0:
        return math.nan
    return 2.0 * cov / den


def vad_report(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, dict[str, float]]:
    """Per-dimension agreement of VAD predictions.

    Args:
        y_true: array of shape ``(n, 3)``, columns valence, arousal, dominance (``n >= 2``).
        y_pred: array of the same shape.

    Returns:
        ``{"valence": {"pearson_r", "ccc", "mae"}, "arousal": {...}, "dominance": {...}}``;
        ``pearson_r`` is ``nan`` for a dimension where either side is constant.

    Raises:
        ValueError: on a shape other than ``(n, 3)``, mismatched shapes, ``n < 2`` or
            non-finite values.
    """
    arrays = []
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(
                f"{name} must have shape (n, 3) (valence, arousal, dominance), got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(a)
    t, p = arrays
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have different shapes: {t.shape} and {p.shape}")
    if t.shape[0] < 2:
        raise ValueError(f"need at least 2 examples for correlations, got {t.shape[0]}")
    return {
        dim: {
            "pearson_r": pearson_r(t[:, j], p[:, j]),
            "ccc": ccc(t[:, j], p[:, j]),
            "mae": float(np.mean(np.abs(t[:, j] - p[:, j]))),
        }
        for j, dim in enumerate(VAD_DIMENSIONS)
    }


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _calibration_inputs(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    conf = _as_1d_float(confidence, "confidence")
    corr = _as_1d_float(correct, "correct")
    if conf.shape != corr.shape:
        raise ValueError(
            f"confidence and correct have different lengths: {conf.size} and {corr.size}"
        )
    if conf.size == 0:
        raise ValueError("confidence and correct are empty; expected at least one example")
    if np.any((conf < 0.0) | (conf > 1.0)):
        bad = conf[(conf < 0.0) | (conf > 1.0)][0]
        raise ValueError(f"confidence values must be in [0, 1], found {bad}")
    if np.any((corr != 0.0) & (corr != 1.0)):
        bad = corr[(corr != 0.0) & (corr != 1.0)][0]
        raise ValueError(f"correct must hold booleans or 0/1, found {bad}")
    return conf, corr


def reliability_bins(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 10
) -> list[dict[str, float]]:
    """Group predictions into equal-width confidence bins, for reliability diagrams.

    ``[0, 1]`` is cut into ``n_bins`` bins; bin ``b`` holds confidences in ``(lo, hi]`` and the
    first bin also holds 0. Every bin is returned, empty ones included, as
    ``{"lo", "hi", "count", "accuracy", "confidence"}`` where ``accuracy`` is the fraction of
    correct predictions and ``confidence`` the mean confidence in the bin; both are ``nan`` for
    an empty bin (``count == 0``), which matplotlib skips when plotting.

    Args:
        confidence: 1-D array of confidences in ``[0, 1]``.
        correct: 1-D array of booleans (or 0/1), whether each prediction was right.
        n_bins: number of bins.

    Raises:
        ValueError: on mismatched lengths, empty input, values out of range or ``n_bins < 1``.
    """
    conf, corr = _calibration_inputs(confidence, correct, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a value equal to an edge into the bin that edge closes: (lo, hi].
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins: list[dict[str, float]] = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": count,
                "accuracy": float(corr[mask].mean()) if count else math.nan,
                "confidence": float(conf[mask].mean()) if count else math.nan,
            }
        )
    return bins


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 10
) -> float:
    """Expected calibration error with equal-width bins (Guo et al., 2017).

    ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|`` over the non-empty bins of
    :func:`reliability_bins` (bins ``(lo, hi]``, the first one including 0). 0 means perfectly
    calibrated at this binning.

    Raises:
        ValueError: on mismatched lengths, empty input, values out of range or ``n_bins < 1``.
    """
    bins = reliability_bins(confidence, correct, n_bins)
    n = sum(b["count"] for b in bins)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])


def brier_score(probs: npt.ArrayLike, targets: npt.ArrayLike) -> float:
    """Brier score: mean over examples of the summed squared error over classes.

    ``mean_i sum_k (probs[i, k] - onehot[i, k])**2`` — Brier's original multi-class definition.
    It lies in ``[0, 2]`` for single-label probabilities (rows summing to 1) and in ``[0, k]``
    for multi-label ones. For two classes it is twice scikit-learn's ``brier_score_loss``,
    which scores the positive class only.

    Args:
        probs: array of shape ``(n, k)`` with values in ``[0, 1]``.
        targets: either integer class indices of shape ``(n,)`` (single-label; turned into
            one-hot rows) or a 0/1 matrix of shape ``(n, k)`` (multi-label).

    Raises:
        ValueError: on wrong shapes, empty input, probabilities outside ``[0, 1]``, class
            indices outside ``[0, k)`` or a target matrix with values other than 0 and 1.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (n, k), got {p.shape}")
    n, k = p.shape
    if n == 0 or k == 0:
        raise ValueError(f"probs is empty (shape {p.shape}); expected at least one example/class")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("probs must hold values in [0, 1] (found a value outside or NaN)")
    t = np.asarray(targets)
    if t.ndim == 1:
        if t.shape[0] != n:
            raise ValueError(f"targets has {t.shape[0]} entries but probs has {n} rows")
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.number):
            raise ValueError(f"1-D targets must be integer class indices, got dtype {t.dtype}")
        if not np.all(np.isfinite(t)) or not np.all(t == np.round(t)):
            raise ValueError("1-D targets must be integer class indices")
        idx = t.astype(np.int64)
        if np.any((idx < 0) | (idx >= k)):
            bad = idx[(idx < 0) | (idx >= k)][0]
            raise ValueError(f"class index {bad} out of range for {k} classes")
        onehot = np.zeros_like(p)
        onehot[np.arange(n), idx] = 1.0
    elif t.ndim == 2:
        if t.shape != p.shape:
            raise ValueError(f"targets shape {t.shape} does not match probs shape {p.shape}")
        try:
            onehot = t.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"targets must be a 0/1 matrix: {exc}") from exc
        if np.any((onehot != 0.0) & (onehot != 1.0)):
            raise ValueError("a 2-D targets matrix must hold only 0 and 1")
    else:
        raise ValueError(f"targets must have shape (n,) or (n, k), got {t.shape}")
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


# --------------------------------------------------------------------------------------------
# Generated text: overlap with a reference, diversity, degeneration
# --------------------------------------------------------------------------------------------
#
# Replies are lower-cased and split into words and punctuation marks (:func:`text_tokens`).
# BLEU-n is corpus BLEU (Papineni et al., 2002) with uniform weights over 1..n-grams, clipped
# counts and the brevity penalty, on a 0-1 scale; ROUGE-L is the mean over replies of the LCS
# F-measure (Lin, 2004, beta = 1); distinct-n is the number of distinct n-grams over all
# replies divided by their total (Li et al., 2016); the repeated n-gram rate of one reply is
# seq-rep-n of "Neural Text Generation with Unlikelihood Training" (Welleck et al., 2020),
# 1 - distinct/total over that reply's own n-grams. Degenerate replies (empty, or looping) are
# counted first and reported as a share; the overlap metrics include them.

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|[^\sa-z0-9]")


def text_tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _check_texts(hyps: Sequence[str], refs: Sequence[str] | None = None) -> None:
    if isinstance(hyps, str) or (refs is not None and isinstance(refs, str)):
        raise ValueError("expected sequences of texts, got a single string")
    if refs is not None:
        _check_pair_lengths(hyps, refs, ("hypotheses", "references"))
    elif len(hyps) == 0:
        raise ValueError("no texts; expected at least one")


def bleu(hypotheses: Sequence[str], references: Sequence[str], n: int = 2) -> float:
    """Corpus BLEU-``n`` of one hypothesis per reference, in ``[0, 1]``."""
    _check_texts(hypotheses, references)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    matches = np.zeros(n)
    totals = np.zeros(n)
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = text_tokens(hyp), text_tokens(ref)
        hyp_len += len(h)
        ref_len += len(r)
        for k in range(1, n + 1):
            hc: dict[tuple[str, ...], int] = {}
            for g in _ngrams(h, k):
                hc[g] = hc.get(g, 0) + 1
            rc: dict[tuple[str, ...], int] = {}
            for g in _ngrams(r, k):
                rc[g] = rc.get(g, 0) + 1
            matches[k - 1] += sum(min(c, rc.get(g, 0)) for g, c in hc.items())
            totals[k - 1] += max(len(h) - k + 1, 0)
    if hyp_len == 0 or np.any(matches == 0):
        return 0.0
    log_p = float(np.mean(np.log(matches / totals)))
    bp = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (LCS-based), in ``[0, 1]``."""
    _check_texts(hypotheses, references)
    scores = []
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = text_tokens(hyp), text_tokens(ref)
        lcs = _lcs(h, r)
        if lcs == 0:
            scores.append(0.0)
            continue
        p, rec = lcs / len(h), lcs / len(r)
        scores.append(2 * p * rec / (p + rec))
    return float(np.mean(scores))


def distinct_n(texts: Sequence[str], n: int = 1) -> float:
    """Distinct n-grams over all ``texts`` divided by all their n-grams (0 when there are none)."""
    _check_texts(texts)
    grams = [g for t in texts for g in _ngrams(text_tokens(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Share of the ``n``-grams of one reply that repeat an earlier ``n``-gram of it.

    ``1 - distinct/total`` over the reply's own ``n``-grams: 0 for a reply without repeats,
    near 1 for a loop ("Our Our Our ..." has rate ``(k - n) / (k - n + 1)`` for ``k`` words);
    0 for a reply shorter than ``n`` tokens.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grams = _ngrams(text_tokens(text), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _longest_run(tokens: Sequence[str]) -> int:
    run = best = 1 if tokens else 0
    for a, b in itertools.pairwise(tokens):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


def is_degenerate(text: str, *, max_repeat: int = 3, min_unique: float = 0.5) -> bool:
    """Whether a reply is degenerate: empty, a token repeated more than ``max_repeat`` times in
    a row, or (for 8+ tokens) fewer than ``min_unique`` of its 3-grams distinct (a loop, i.e.
    :func:`repeated_ngram_rate` above ``1 - min_unique``)."""
    toks = text_tokens(text)
    if not [t for t in toks if t.isalnum()]:
        return True
    if _longest_run(toks) > max_repeat:
        return True
    return len(toks) >= 8 and repeated_ngram_rate(text, 3) > 1.0 - min_unique


def repetition_report(texts: Sequence[str]) -> dict[str, float]:
    """Repetition statistics of generated replies, for judging fluency beside perplexity.

    ``degenerate_share`` (:func:`is_degenerate`), ``distinct_1``/``distinct_2`` over all
    replies (:func:`distinct_n`), the mean per-reply ``distinct_2_per_reply`` (low when each
    reply loops even if replies differ from each other), the mean ``repeated_3gram_rate``
    (:func:`repeated_ngram_rate`) and the mean ``longest_run`` of one repeated token.
    """
    _check_texts(texts)

    def own_distinct(t: str) -> float:
        grams = _ngrams(text_tokens(t), 2)
        return len(set(grams)) / len(grams) if grams else 0.0

    return {
        "degenerate_share": degenerate_share(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_2_per_reply": float(np.mean([own_distinct(t) for t in texts])),
        "repeated_3gram_rate": float(np.mean([repeated_ngram_rate(t, 3) for t in texts])),
        "longest_run": float(np.mean([_longest_run(text_tokens(t)) for t in texts])),
    }


def degenerate_share(texts: Sequence[str]) -> float:
    """The share of ``texts`` that :func:`is_degenerate` flags."""
    _check_texts(texts)
    return sum(is_degenerate(t) for t in texts) / len(texts)
