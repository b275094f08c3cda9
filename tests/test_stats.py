"""Tests of emoscope.stats: integer-label scores with bootstrap intervals, paired tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emoscope.metrics import classification_report
from emoscope.stats import (
    bootstrap_ci,
    classification_scores,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    significance_marker,
)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (1, 5, 14 / 64),  # 2 * (C(6,0) + C(6,1)) / 2^6
        (0, 6, 2 / 64),
        (3, 3, 1.0),  # 2 * 42/64 > 1
        (2, 10, 2 * (1 + 12 + 66) / 4096),
        (0, 0, 1.0),
        (7, 0, 2 / 128),
    ],
)
def test_mcnemar_exact_hand_computed(b: int, c: int, p: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(p)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_sign_flip_and_bootstrap() -> None:
    # All 8 sign patterns of (1, 1, 1): only +++ and --- reach |mean| >= 1.
    assert sign_flip_test([0, 0, 0], [1, 1, 1]) == pytest.approx(0.25)
    assert sign_flip_test([1, 2], [1, 2]) == 1.0
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    assert sign_flip_test(a, a + 3.0) < 0.01  # n > 16: Monte Carlo
    lo, hi = paired_bootstrap_ci([0, 0, 1, 1, 0], [1, 1, 1, 1, 0], n_boot=2000)
    assert lo <= 0.4 <= hi and lo >= 0.0
    with pytest.raises(ValueError):
        paired_bootstrap_ci([], [])
    assert [significance_marker(p) for p in (0.0004, 0.004, 0.04, 0.4, math.nan)] == [
        "***", "**", "*", "n.s.", "-",
    ]  # fmt: skip


def test_scores_match_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(5):
        yt = rng.integers(0, 5, 80)
        yp = rng.integers(0, 6, 80)
        acc, f1 = classification_scores(yt, yp)
        assert acc == pytest.approx(sk.accuracy_score(yt, yp))
        assert f1 == pytest.approx(sk.f1_score(yt, yp, average="macro", zero_division=0))
    with pytest.raises(ValueError):
        classification_scores(np.array([1]), np.array([1, 2]))


def test_bootstrap_ci_brackets_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    small_t, large_t = rng.integers(0, 3, 100), rng.integers(0, 3, 2000)
    small_p = np.where(rng.random(100) < 0.7, small_t, (small_t + 1) % 3)
    large_p = np.where(rng.random(2000) < 0.7, large_t, (large_t + 1) % 3)
    ci_s = bootstrap_ci(small_t, small_p, n_boot=500)
    ci_l = bootstrap_ci(large_t, large_p, n_boot=500)
    acc_s, f1_s = classification_scores(small_t, small_p)
    assert ci_s["accuracy"][0] <= acc_s <= ci_s["accuracy"][1]
    assert ci_s["macro_f1"][0] <= f1_s <= ci_s["macro_f1"][1]
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(ci_l["accuracy"]) < width(ci_s["accuracy"]) / 2


def test_macro_f1_agrees_with_metrics_over_the_classes_present() -> None:
    # Two implementations of one definition: the vectorised one here (for bootstrap resamples)
    # and metrics.classification_report over label strings.
    rng = np.random.default_rng(11)
    names = ["anger", "joy", "fear", "sadness", "neutral", "surprise"]
    for _ in range(5):
        yt = rng.integers(0, 5, 60)
        yp = rng.integers(0, 6, 60)
        present = sorted(set(yt.tolist()) | set(yp.tolist()))
        report = classification_report(
            [names[i] for i in yt], [names[i] for i in yp], [names[i] for i in present]
        )
        acc, f1 = classification_scores(yt, yp)
        assert acc == pytest.approx(report["accuracy"])
        assert f1 == pytest.approx(report["macro_f1"])


def test_old_homes_re_export_the_same_functions() -> None:
    from emoscope import probe, stats, stimuli

    for name in ("mcnemar_exact", "paired_bootstrap_ci", "sign_flip_test", "significance_marker"):
        assert getattr(stimuli, name) is getattr(stats, name) and name in stimuli.__all__
    for name in ("bootstrap_ci", "classification_scores"):
        assert getattr(probe, name) is getattr(stats, name) and name in probe.__all__
