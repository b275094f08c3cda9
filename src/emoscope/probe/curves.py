"""Layer curves: one probe per layer, scored on held-out data with percentile bootstrap 95%
intervals of accuracy and macro-F1 (resampling test examples; :mod:`emoscope.stats`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.probe.probes import L2_GRID, Probe, fit_probe
from emoscope.stats import bootstrap_ci, classification_scores

if TYPE_CHECKING:
    from emoscope.activations import Activations

__all__ = [
    "LayerScore",
    "ProbeCurve",
    "probe_layers",
]


@dataclass
class LayerScore:
    """Held-out scores of the probe of one layer."""

    layer: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    l2: float | None = None


@dataclass
class ProbeCurve:
    """Scores per layer of one model (or its random-init control)."""

    model: str
    random_init: bool
    probe: str
    pooling: str
    scores: list[LayerScore]

    def best(self, metric: str = "macro_f1") -> LayerScore:
        """The layer with the highest ``metric`` (``accuracy`` or ``macro_f1``)."""
        return max(self.scores, key=lambda s: float(getattr(s, metric)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["best_layer"] = {m: self.best(m).layer for m in ("accuracy", "macro_f1")}
        return d


def probe_layers(
    train: Activations,
    y_train: np.ndarray,
    test: Activations,
    y_test: np.ndarray,
    *,
    kind: str = "linear",
    layers: Sequence[int] | None = None,
    n_classes: int | None = None,
    class_weight: str | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[ProbeCurve, dict[int, Probe]]:
    """Train one probe per layer on ``train`` and score it on ``test``.

    Returns the curve and the fitted probes by layer.
    """
    chosen = list(layers) if layers is not None else list(train.layers)
    k = n_classes or int(max(np.max(y_train), np.max(y_test))) + 1
    scores: list[LayerScore] = []
    probes: dict[int, Probe] = {}
    for lay in chosen:
        xtr = np.asarray(train.layer(lay), dtype=np.float32)
        probe, l2 = fit_probe(xtr, y_train, kind, n_classes=k, class_weight=class_weight, seed=seed)
        pred = probe.predict(np.asarray(test.layer(lay), dtype=np.float32))
        acc, f1 = classification_scores(y_test, pred)
        ci = bootstrap_ci(y_test, pred, n_boot=n_boot, seed=seed)
        scores.append(LayerScore(lay, acc, ci["accuracy"], f1, ci["macro_f1"], l2))
        probes[lay] = probe
        if progress is not None:
            progress(f"layer {lay}: accuracy {acc:.3f}, macro-F1 {f1:.3f}")
    curve = ProbeCurve(
        train.model, bool(train.meta.get("random_init", False)), kind, train.pooling, scores
    )
    return curve, probes
