"""Tests for emoscope.metrics, against scikit-learn / scipy and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

from emoscope.metrics import (
    accuracy,
    brier_score,
    ccc,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    pearson_r,
    precision_recall_f1,
    reliability_bins,
    vad_report,
)

LABELS = ["anger", "fear", "joy", "sadness", "neutral"]
SEEDS = [0, 1, 2]


def random_single(seed: int, n: int = 200) -> tuple[list[str], list[str]]:
    """Random single-label data; 'neutral' never occurs in y_true (zero support)."""
    rng = np.random.default_rng(seed)
    y_true = list(rng.choice(LABELS[:4], size=n))
    y_pred = list(rng.choice(LABELS, size=n))
    # Make about half the predictions right so the scores are not all near chance.
    keep = rng.random(n) < 0.5
    y_pred = [t if k else p for t, p, k in zip(y_true, y_pred, keep, strict=True)]
    return y_true, y_pred


def random_multi(seed: int, n: int = 200) -> tuple[list[set[str]], list[set[str]]]:
    """Random multi-label data, with empty sets; 'neutral' never predicted."""
    rng = np.random.default_rng(seed)
    y_true = [{lab for lab in LABELS if rng.random() < 0.3} for _ in range(n)]
    y_pred = []
    for t in y_true:
        flipped = {lab for lab in LABELS[:4] if rng.random() < 0.2}
        y_pred.append((t - {"neutral"}) ^ flipped)
    return y_true, y_pred


def binarize(y: list[set[str]]) -> np.ndarray:
    return MultiLabelBinarizer(classes=LABELS).fit_transform(y)


# ---------------------------------------------------------------------------- accuracy


def test_accuracy_hand_single() -> None:
    assert accuracy(["joy", "fear", "joy", "anger"], ["joy", "joy", "joy", "anger"]) == 0.75


def test_accuracy_hand_multi_is_exact_match() -> None:
    y_true = [{"joy"}, ("anger", "fear"), [], ["sadness"]]
    # Order and container type do not matter; a partial match does not count.
    y_pred = [["joy"], {"fear", "anger"}, set(), ("sadness", "joy")]
    assert accuracy(y_true, y_pred) == 0.75


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn(seed: int) -> None:
    y_true, y_pred = random_single(seed)
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    m_true, m_pred = random_multi(seed)
    expected = skm.accuracy_score(binarize(m_true), binarize(m_pred))
    assert accuracy(m_true, m_pred) == pytest.approx(expected)


def test_accuracy_accepts_numpy_strings() -> None:
    y_true, y_pred = np.array(["a", "b"]), np.array(["a", "a"])
    assert accuracy(y_true, y_pred) == 0.5  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_hand() -> None:
    cm = confusion_matrix(
        ["joy", "joy", "fear", "anger", "fear"],
        ["joy", "fear", "fear", "joy", "fear"],
        labels=["anger", "fear", "joy"],
    )
    expected = [
        [0, 0, 1],  # anger -> joy
        [0, 2, 0],  # fear -> fear x2
        [0, 1, 1],  # joy -> fear, joy
    ]
    np.testing.assert_array_equal(cm, expected)
    assert np.issubdtype(cm.dtype, np.integer)


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    y_true, y_pred = random_single(seed)
    expected = skm.confusion_matrix(y_true, y_pred, labels=LABELS)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, LABELS), expected)


def test_confusion_matrix_unknown_label_is_named() -> None:
    with pytest.raises(ValueError, match="'happy'"):
        confusion_matrix(["joy", "happy"], ["joy", "joy"], labels=["joy"])
    with pytest.raises(ValueError, match="'happy'"):
        confusion_matrix(["joy", "joy"], ["joy", "happy"], labels=["joy"])


def test_confusion_matrix_rejects_multi_label() -> None:
    with pytest.raises(ValueError, match="single-label"):
        confusion_matrix([{"joy"}], [{"joy"}], labels=["joy"])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- precision/recall/F1


def test_precision_recall_f1_hand() -> None:
    y_true = ["joy", "joy", "joy", "fear", "anger"]
    y_pred = ["joy", "joy", "fear", "fear", "fear"]
    table = precision_recall_f1(y_true, y_pred, labels=["anger", "fear", "joy", "sadness"])
    # joy: tp 2, fp 0, fn 1 -> p 1, r 2/3, f1 0.8
    assert table["joy"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    # fear: tp 1, fp 2, fn 0 -> p 1/3, r 1, f1 0.5
    assert table["fear"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1}
    )
    # anger: never predicted -> precision 0 by the zero-division convention
    assert table["anger"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # sadness: neither true nor predicted -> all zeros
    assert table["sadness"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert list(table) == ["anger", "fear", "joy", "sadness"]


def assert_prf_matches(table: dict[str, dict[str, float]], y_true: object, y_pred: object) -> None:
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, average=None, zero_division=0
    )
    for j, label in enumerate(LABELS):
        row = table[label]
        assert row["precision"] == pytest.approx(p[j])
        assert row["recall"] == pytest.approx(r[j])
        assert row["f1"] == pytest.approx(f[j])
        assert row["support"] == s[j]


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_f1_matches_sklearn_single(seed: int) -> None:
    y_true, y_pred = random_single(seed)
    assert_prf_matches(precision_recall_f1(y_true, y_pred, LABELS), y_true, y_pred)


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_f1_matches_sklearn_multi(seed: int) -> None:
    y_true, y_pred = random_multi(seed)
    table = precision_recall_f1(y_true, y_pred, LABELS)
    # MultiLabelBinarizer columns follow LABELS, so sklearn's labels= are the column indices.
    p, r, f, s = skm.precision_recall_fscore_support(
        binarize(y_true), binarize(y_pred), average=None, zero_division=0
    )
    for j, label in enumerate(LABELS):
        assert table[label]["precision"] == pytest.approx(p[j])
        assert table[label]["recall"] == pytest.approx(r[j])
        assert table[label]["f1"] == pytest.approx(f[j])
        assert table[label]["support"] == s[j]


def test_precision_recall_f1_unknown_label() -> None:
    with pytest.raises(ValueError, match="'happy'"):
        precision_recall_f1([{"joy"}], [{"joy", "happy"}], labels=["joy"])


# ---------------------------------------------------------------------------- classification_report


def test_classification_report_hand() -> None:
    y_true = ["joy", "joy", "joy", "fear", "anger"]
    y_pred = ["joy", "joy", "fear", "fear", "fear"]
    report = classification_report(y_true, y_pred, labels=["anger", "fear", "joy", "sadness"])
    assert set(report) == {
        "accuracy",
        "weighted_f1",
        "macro_f1",
        "micro_f1",
        "per_label",
        "n",
        "multi_label",
    }
    # per-label F1: anger 0, fear 0.5, joy 0.8, sadness 0 (support 1, 1, 3, 0)
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["macro_f1"] == pytest.approx((0 + 0.5 + 0.8 + 0) / 4)
    assert report["weighted_f1"] == pytest.approx((0 * 1 + 0.5 * 1 + 0.8 * 3) / 5)
    assert report["micro_f1"] == pytest.approx(0.6)
    assert report["n"] == 5
    assert report["multi_label"] is False


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_matches_sklearn_single(seed: int) -> None:
    y_true, y_pred = random_single(seed)
    report = classification_report(y_true, y_pred, LABELS)
    for average in ("weighted", "macro", "micro"):
        expected = skm.f1_score(y_true, y_pred, labels=LABELS, average=average, zero_division=0)
        assert report[f"{average}_f1"] == pytest.approx(expected), average
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report["micro_f1"] == pytest.approx(report["accuracy"])
    assert report["multi_label"] is False
    assert report["n"] == len(y_true)


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_matches_sklearn_multi(seed: int) -> None:
    y_true, y_pred = random_multi(seed)
    t, p = binarize(y_true), binarize(y_pred)
    report = classification_report(y_true, y_pred, LABELS)
    for average in ("weighted", "macro", "micro"):
        expected = skm.f1_score(t, p, average=average, zero_division=0)
        assert report[f"{average}_f1"] == pytest.approx(expected), average
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert report["multi_label"] is True


def test_classification_report_macro_counts_zero_support_labels() -> None:
    # A perfect run on one label, with a second label that never occurs: macro is halved.
    report = classification_report(["joy"] * 3, ["joy"] * 3, labels=["joy", "fear"])
    assert report["macro_f1"] == pytest.approx(0.5)
    assert report["weighted_f1"] == pytest.approx(1.0)
    assert report["micro_f1"] == pytest.approx(1.0)


def test_classification_report_all_empty_multi_label() -> None:
    report = classification_report([set(), set()], [set(), set()], labels=["joy"])
    assert report["accuracy"] == 1.0
    assert report["weighted_f1"] == 0.0
    assert report["micro_f1"] == 0.0


# ---------------------------------------------------------------------------- label validation

BAD_LABEL_INPUTS: list[tuple[object, object, str]] = [
    (["joy"], ["joy", "fear"], "different lengths"),
    ([], [], "empty"),
    (["joy", {"fear"}], ["joy", "joy"], "mixes"),
    (["joy"], [{"joy"}], "same kind"),
    ([{"joy", 3}], [{"joy"}], "contains int"),
    ([5], [{"joy"}], "item 0 of y_true is int"),
    ("joy", "joy", "string"),
]


@pytest.mark.parametrize(("y_true", "y_pred", "message"), BAD_LABEL_INPUTS)
def test_label_metrics_reject_bad_input(y_true: object, y_pred: object, message: str) -> None:
    for call in (
        lambda: accuracy(y_true, y_pred),  # type: ignore[arg-type]
        lambda: precision_recall_f1(y_true, y_pred, ["joy", "fear"]),  # type: ignore[arg-type]
        lambda: classification_report(y_true, y_pred, ["joy", "fear"]),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize(
    ("labels", "message"),
    [([], "labels is empty"), (["joy", "joy"], "more than once"), ("joy", "string")],
)
def test_bad_labels_argument(labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        precision_recall_f1(["joy"], ["joy"], labels)
    with pytest.raises(ValueError, match=message):
        confusion_matrix(["joy"], ["joy"], labels)


# ---------------------------------------------------------------------------- pearson / CCC


@pytest.mark.parametrize("seed", SEEDS)
def test_pearson_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=50)
    y = 0.6 * x + rng.normal(size=50)
    assert pearson_r(x, y) == pytest.approx(pearsonr(x, y)[0])


def test_pearson_perfect_and_constant() -> None:
    assert pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson_r([0.1, 0.1, 0.1], [1, 2, 3]))
    assert math.isnan(pearson_r([1, 2, 3], [5, 5, 5]))


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        ([1, 2, 3], 1.0),  # identical
        # shifted by 1: var 2/3 each, cov 2/3, mean gap 1 -> (4/3) / (2/3 + 2/3 + 1) = 4/7
        ([2, 3, 4], 4 / 7),
        # scaled by 2: var_y 8/3, cov 4/3, mean gap 2 -> (8/3) / (2/3 + 8/3 + 4) = 4/11
        ([2, 4, 6], 4 / 11),
        # reversed, same mean: cov -2/3 -> (-4/3) / (4/3) = -1
        ([3, 2, 1], -1.0),
    ],
)
def test_ccc_hand(y: list[float], expected: float) -> None:
    assert ccc([1, 2, 3], y) == pytest.approx(expected)


def test_ccc_bounded_by_pearson() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=100)
    y = 0.5 * x + 0.3 + rng.normal(scale=0.5, size=100)
    assert abs(ccc(x, y)) <= abs(pearson_r(x, y)) + 1e-12
    assert ccc(x, y) == pytest.approx(ccc(y, x))


def test_ccc_both_same_constant_is_nan() -> None:
    assert math.isnan(ccc([2, 2], [2, 2]))
    assert ccc([2, 2], [3, 3]) == 0.0


@pytest.mark.parametrize("fn", [pearson_r, ccc])
@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1, 2, 3], [1, 2], "different lengths"),
        ([], [], "at least 2"),
        ([1], [1], "at least 2"),
        ([[1, 2]], [[1, 2]], "1-D"),
        ([1, float("nan")], [1, 2], "NaN"),
        (["a", "b"], [1, 2], "numeric"),
    ],
)
def test_correlations_reject_bad_input(fn: object, x: object, y: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn(x, y)  # type: ignore[operator]


# ---------------------------------------------------------------------------- VAD report


def test_vad_report() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.uniform(-1, 1, size=(40, 3))
    y_pred = np.clip(y_true + rng.normal(scale=0.3, size=(40, 3)), -1, 1)
    report = vad_report(y_true, y_pred)
    assert list(report) == ["valence", "arousal", "dominance"]
    for j, dim in enumerate(report):
        assert set(report[dim]) == {"pearson_r", "ccc", "mae"}
        assert report[dim]["pearson_r"] == pytest.approx(pearsonr(y_true[:, j], y_pred[:, j])[0])
        assert report[dim]["ccc"] == pytest.approx(ccc(y_true[:, j], y_pred[:, j]))
        expected_mae = skm.mean_absolute_error(y_true[:, j], y_pred[:, j])
        assert report[dim]["mae"] == pytest.approx(expected_mae)


def test_vad_report_hand() -> None:
    y_true = [[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]
    y_pred = [[0.0, 0.0, 1.0], [1.0, 1.0, 0.5]]
    report = vad_report(y_true, y_pred)
    assert report["valence"] == pytest.approx({"pearson_r": 1.0, "ccc": 1.0, "mae": 0.0})
    assert math.isnan(report["arousal"]["pearson_r"])  # constant truth
    assert report["arousal"]["mae"] == pytest.approx(0.5)
    assert report["dominance"]["mae"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.zeros((4, 2)), np.zeros((4, 2)), r"shape \(n, 3\)"),
        (np.zeros(3), np.zeros(3), r"shape \(n, 3\)"),
        (np.zeros((4, 3)), np.zeros((5, 3)), "different shapes"),
        (np.zeros((1, 3)), np.zeros((1, 3)), "at least 2"),
        (np.full((2, 3), np.inf), np.zeros((2, 3)), "NaN or infinite"),
    ],
)
def test_vad_report_rejects_bad_input(y_true: object, y_pred: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vad_report(y_true, y_pred)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- calibration


def test_ece_hand() -> None:
    # 5 bins: [0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    confidence = [0.1, 0.3, 0.35, 0.9, 0.95, 1.0]
    correct = [0, 1, 0, 1, 1, 0]
    # bin 1: {0.1}            acc 0,   conf 0.1   -> gap 0.1,   weight 1/6
    # bin 2: {0.3, 0.35}      acc 1/2, conf 0.325 -> gap 0.175, weight 2/6
    # bin 5: {0.9, 0.95, 1.0} acc 2/3, conf 0.95  -> gap 17/60, weight 3/6
    # ECE = (0.1 + 2 * 0.175 + 3 * 17/60) / 6 = (0.1 + 0.35 + 0.85) / 6 = 13/60
    assert expected_calibration_error(confidence, correct, n_bins=5) == pytest.approx(13 / 60)


def test_ece_bin_edges_are_right_closed() -> None:
    # With 2 bins, 0.5 belongs to [0, 0.5] and 0 to the first bin too.
    bins = reliability_bins([0.0, 0.5, 0.5000001, 1.0], [True, True, False, False], n_bins=2)
    assert [b["count"] for b in bins] == [2, 2]
    assert bins[0]["lo"] == 0.0 and bins[0]["hi"] == 0.5 and bins[1]["hi"] == 1.0
    # bin 1: acc 1, conf 0.25 -> 0.75; bin 2: acc 0, conf ~0.75 -> ~0.75; ECE ~0.75
    ece = expected_calibration_error([0.0, 0.5, 0.5000001, 1.0], [1, 1, 0, 0], n_bins=2)
    assert ece == pytest.approx(0.75, abs=1e-6)


def test_ece_perfectly_calibrated_is_zero() -> None:
    # In each bin the accuracy equals the confidence.
    confidence = [0.25] * 4 + [0.75] * 4 + [1.0] * 2
    correct = [1, 0, 0, 0, 1, 1, 1, 0, 1, 1]  # 1/4, 3/4 and 2/2 correct
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def reference_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Straightforward loop over bins, written independently of the module."""
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (conf > lo) & (conf <= hi)
        if b == 0:
            in_bin |= conf == 0.0
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_matches_reference(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    conf = rng.uniform(0, 1, size=500)
    correct = (rng.uniform(0, 1, size=500) < conf**2).astype(float)
    expected = reference_ece(conf, correct, n_bins)
    assert expected_calibration_error(conf, correct, n_bins) == pytest.approx(expected)


def test_reliability_bins_shape() -> None:
    bins = reliability_bins([0.05, 0.95, 0.92], [1, 1, 0], n_bins=10)
    assert len(bins) == 10
    assert sum(b["count"] for b in bins) == 3
    assert bins[0] == pytest.approx(
        {"lo": 0.0, "hi": 0.1, "count": 1, "accuracy": 1.0, "confidence": 0.05}
    )
    assert bins[9]["accuracy"] == pytest.approx(0.5)
    assert bins[9]["confidence"] == pytest.approx(0.935)
    assert bins[5]["count"] == 0
    assert math.isnan(bins[5]["accuracy"]) and math.isnan(bins[5]["confidence"])


@pytest.mark.parametrize(
    ("confidence", "correct", "n_bins", "message"),
    [
        ([0.5], [1, 0], 10, "different lengths"),
        ([], [], 10, "empty"),
        ([1.5], [1], 10, r"in \[0, 1\]"),
        ([0.5], [2], 10, "0/1"),
        ([0.5], [1], 0, "n_bins"),
        ([0.5], [1], 2.5, "n_bins"),
        ([[0.5]], [[1]], 10, "1-D"),
    ],
)
def test_calibration_rejects_bad_input(
    confidence: object, correct: object, n_bins: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(confidence, correct, n_bins)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        reliability_bins(confidence, correct, n_bins)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- Brier score


def test_brier_single_label_hand() -> None:
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]
    # example 1, class 0: 0.3² + 0.2² + 0.1² = 0.14
    # example 2, class 2: 0.1² + 0.8² + 0.9² = 1.46        mean = 0.8
    assert brier_score(probs, [0, 2]) == pytest.approx(0.8)
    assert brier_score(probs, np.eye(3)[[0, 2]]) == pytest.approx(0.8)


def test_brier_multi_label_hand() -> None:
    probs = [[0.9, 0.6], [0.2, 0.3]]
    # example 1, targets (1, 1): 0.1² + 0.4² = 0.17
    # example 2, targets (0, 1): 0.2² + 0.7² = 0.53       mean = 0.35
    assert brier_score(probs, [[1, 1], [0, 1]]) == pytest.approx(0.35)
    assert brier_score(probs, np.array([[True, True], [False, True]])) == pytest.approx(0.35)


def test_brier_perfect_and_worst() -> None:
    assert brier_score(np.eye(3), [0, 1, 2]) == 0.0
    assert brier_score(np.eye(3), [1, 2, 0]) == pytest.approx(2.0)


def test_brier_binary_is_twice_sklearn() -> None:
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, size=100)
    y = (rng.uniform(0, 1, size=100) < p1).astype(int)
    probs = np.stack([1 - p1, p1], axis=1)
    assert brier_score(probs, y) == pytest.approx(2 * skm.brier_score_loss(y, p1))


@pytest.mark.parametrize(
    ("probs", "targets", "message"),
    [
        ([0.5, 0.5], [0, 1], r"shape \(n, k\)"),
        (np.zeros((0, 3)), [], "empty"),
        ([[0.5, 1.5]], [0], r"\[0, 1\]"),
        ([[0.5, 0.5]], [2], "out of range"),
        ([[0.5, 0.5]], [-1], "out of range"),
        ([[0.5, 0.5]], [0.5], "integer"),
        ([[0.5, 0.5]], [True], "integer"),
        ([[0.5, 0.5]], [0, 1], "1 rows"),
        ([[0.5, 0.5]], [[1, 0, 0]], "does not match"),
        ([[0.5, 0.5]], [[1, 2]], "only 0 and 1"),
        ([[0.5, 0.5]], np.zeros((1, 2, 1)), r"shape \(n,\) or \(n, k\)"),
    ],
)
def test_brier_rejects_bad_input(probs: object, targets: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        brier_score(probs, targets)  # type: ignore[arg-type]


def test_public_api() -> None:
    import emoscope.metrics as m

    assert set(m.__all__) == {
        "accuracy",
        "bleu",
        "degenerate_share",
        "distinct_n",
        "is_degenerate",
        "repeated_ngram_rate",
        "repetition_report",
        "rouge_l",
        "text_tokens",
        "brier_score",
        "ccc",
        "classification_report",
        "confusion_matrix",
        "expected_calibration_error",
        "pearson_r",
        "precision_recall_f1",
        "reliability_bins",
        "vad_report",
    }
    for name in m.__all__:
        assert getattr(m, name).__doc__


# -- generated text ---------------------------------------------------------------------------


def test_bleu_rouge_by_hand() -> None:
    from emoscope.metrics import bleu, rouge_l

    h, r = ["the cat sat on the mat"], ["the cat is on the mat"]
    # unigrams 5/6, bigrams 3/5, same length: sqrt(5/6 * 3/5)
    assert bleu(h, r) == pytest.approx((5 / 6 * 3 / 5) ** 0.5)
    assert bleu(h, r, n=1) == pytest.approx(5 / 6)
    assert rouge_l(h, r) == pytest.approx(5 / 6)  # LCS "the cat on the mat"
    assert bleu(["hello"], ["bye"]) == 0.0 and rouge_l(["hello"], ["bye"]) == 0.0
    # brevity penalty: a short exact prefix
    assert bleu(["the cat"], ["the cat sat"]) == pytest.approx(math.exp(1 - 3 / 2))
    with pytest.raises(ValueError, match="different lengths"):
        bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="single string"):
        rouge_l("abc", "abc")  # type: ignore[arg-type]


def test_distinct_and_degenerate() -> None:
    from emoscope.metrics import degenerate_share, distinct_n, is_degenerate, text_tokens

    assert text_tokens("I'm SO sorry.") == ["i'm", "so", "sorry", "."]
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a"], 2) == 0.0
    assert is_degenerate("") and is_degenerate("...") and is_degenerate("no no no no")
    assert is_degenerate("I am here. I am here. I am here. I am here.")
    assert not is_degenerate("That sounds really hard, I am sorry.")
    assert degenerate_share(["ok then", "", "so so so so", "fine"]) == 0.5
    with pytest.raises(ValueError, match="no texts"):
        degenerate_share([])


def test_repetition_measures_catch_loops_that_perplexity_misses() -> None:
    from emoscope.metrics import is_degenerate, repeated_ngram_rate, repetition_report

    loop = "Our " * 20
    assert repeated_ngram_rate(loop, 3) == pytest.approx(17 / 18)
    assert repeated_ngram_rate("I am sad", 3) == 0.0 and repeated_ngram_rate("sad", 3) == 0.0
    # a sentence looping with period 6 tokens: most 3-grams repeat
    sentence_loop = "I am forever filled with sorrow. " * 4
    assert repeated_ngram_rate(sentence_loop, 3) > 0.6 and is_degenerate(sentence_loop)
    with pytest.raises(ValueError, match="at least 1"):
        repeated_ngram_rate("a b", 0)
    fine = "I cannot believe they cancelled the trip, this is so unfair!"
    rep = repetition_report([fine, loop])
    assert rep["degenerate_share"] == 0.5
    assert rep["longest_run"] == pytest.approx((1 + 20) / 2)
    assert rep["repeated_3gram_rate"] == pytest.approx(17 / 18 / 2)
    assert rep["distinct_2_per_reply"] == pytest.approx((1.0 + 1 / 19) / 2)
    with pytest.raises(ValueError, match="no texts"):
        repetition_report([])
