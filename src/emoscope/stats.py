"""Statistics over per-item outcomes: scores of integer labels with bootstrap intervals, and
paired tests of two conditions on the same items.

* :func:`classification_scores` and :func:`bootstrap_ci`: accuracy and macro-F1 of integer class
  ids (macro over the classes present in either array, scikit-learn's default without
  ``labels=``), vectorised over bootstrap resamples; :func:`emoscope.metrics.classification_report`
  is the same macro-F1 over an explicit list of label strings. Percentile bootstrap: Efron &
  Tibshirani (1993), "An Introduction to the Bootstrap".
* :func:`mcnemar_exact`: exact McNemar test on discordant pairs (McNemar, 1947, Psychometrika
  12(2)); :func:`sign_flip_test`: paired permutation test by sign flips (Fisher, 1935);
  :func:`paired_bootstrap_ci`: percentile interval of a mean paired difference;
  :func:`holm_adjust`: Holm's step-down correction for several stimuli tested on one task;
  :func:`significance_marker`: the usual stars.

Used by the probes (:mod:`emoscope.probe`) and the stimulus A/B harness (:mod:`emoscope.stimuli`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "bootstrap_ci",
    "classification_scores",
    "holm_adjust",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "sign_flip_test",
    "significance_marker",
]


# --------------------------------------------------------------------------------------------
# Accuracy and macro-F1 of integer labels, with bootstrap intervals


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """``(accuracy, macro_f1)`` of integer labels.

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's
    default), with F1 = 0 where precision and recall are both undefined.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equal, non-zero lengths; got {len(y_true)} and {len(y_pred)}")
    acc, f1 = _scores_batch(y_true[None, :], y_pred[None, :])
    return float(acc[0]), float(f1[0])


def _scores_batch(yt: np.ndarray, yp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 for each row of ``(b, n)`` label matrices."""
    acc = (yt == yp).mean(1)
    classes = np.union1d(np.unique(yt), np.unique(yp))
    f1_sum = np.zeros(yt.shape[0])
    present = np.zeros(yt.shape[0])
    for c in classes:
        t, p = yt == c, yp == c
        tp = (t & p).sum(1)
        fp = (~t & p).sum(1)
        fn = (t & ~p).sum(1)
        denom = 2 * tp + fp + fn
        f1_sum += np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        present += denom > 0
    return acc, f1_sum / np.maximum(present, 1)


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1, resampling examples."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    accs: list[np.ndarray] = []
    f1s: list[np.ndarray] = []
    chunk = max(1, 2_000_000 // max(1, len(y_true)))
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, len(y_true), size=(min(chunk, n_boot - start), len(y_true)))
        a, f = _scores_batch(y_true[idx], y_pred[idx])
        accs.append(a)
        f1s.append(f)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    acc_all, f1_all = np.concatenate(accs), np.concatenate(f1s)
    return {
        "accuracy": (float(np.percentile(acc_all, lo)), float(np.percentile(acc_all, hi))),
        "macro_f1": (float(np.percentile(f1_all, lo)), float(np.percentile(f1_all, hi))),
    }


# --------------------------------------------------------------------------------------------
# Paired comparisons


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null each discordant pair falls either way with probability 1/2, so
    ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``; ``p = 1`` when
    there are no discordant pairs.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(b) - mean(a)``, resampling items (pairs)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two equal-length, non-empty samples; got {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    d = y - x
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(1)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return float(np.percentile(means, lo)), float(np.percentile(means, hi))


def sign_flip_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_perm: int = 10000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation p-value for ``mean(b - a) != 0`` by random sign flips.

    Exact (all ``2^n`` sign patterns) when ``n <= 16``; otherwise Monte Carlo with the
    ``(count + 1) / (n_perm + 1)`` correction.
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no pairs to test")
    observed = abs(d.mean())
    if np.allclose(d, 0):
        return 1.0
    if d.size <= 16:
        signs = ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1) * 2 - 1
        stats = np.abs((signs * d).mean(1))
        return float((stats >= observed - 1e-12).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    stats = np.abs((signs * d).mean(1))
    return float(((stats >= observed - 1e-12).sum() + 1) / (n_perm + 1))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm, 1979, Scand. J. Statistics 6(2)), same order.

    Controls the family-wise error rate over the tests given; a non-finite p-value is kept as
    it is and not counted as a test.
    """
    finite = [(p, i) for i, p in enumerate(p_values) if math.isfinite(p)]
    m = len(finite)
    out = [float(p) for p in p_values]
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def significance_marker(p: float) -> str:
    """``***`` (p < 0.001), ``**`` (< 0.01), ``*`` (< 0.05) or ``n.s.``."""
    if not math.isfinite(p):
        return "-"
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."
