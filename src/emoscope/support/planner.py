"""The strategy planner: which of ESConv's eight support strategies the supporter uses next.

"Can Large Language Models be Good Emotional Supporter? Mitigating Preference Bias on Emotional
Support Conversation" (Kang et al., ACL 2024) shows that LLMs over-use a few strategies and
that an external strategy planner reduces this preference bias. emoscope's planner is a small
multinomial logistic regression over the features of :mod:`emoscope.support.state` (emotion
encoder features of the history, the seeker's emotion and VAD, the previous strategy),
standardised, with L2 regularisation, fitted by full-batch gradient descent with Adam in numpy.

Saved as a folder: ``config.json`` (strategies, regularisation, feature size) and
``weights.npz`` (weights, bias, standardisation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope._io import write_json
from emoscope.datasets.esconv import STRATEGIES
from emoscope.errors import EmoscopeError

__all__ = ["StrategyPlanner"]


class StrategyPlanner:
    """Multinomial logistic regression from a support-state vector to a strategy.

    Args:
        l2: L2 penalty on the weights (per example, on standardised features).
        epochs: full-batch gradient steps.
        lr: Adam step size.
        class_weight: ``"balanced"`` weighs each strategy inversely to its frequency (the
            planner then spreads its choices like the human supporters); ``None`` for plain
            likelihood.
        seed: initialisation seed.
    """

    def __init__(
        self,
        l2: float = 1e-2,
        epochs: int = 300,
        lr: float = 0.01,
        class_weight: str | None = None,
        seed: int = 0,
    ) -> None:
        if class_weight not in (None, "balanced"):
            raise EmoscopeError(f"class_weight is {class_weight!r}; expected None or 'balanced'")
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.class_weight = class_weight
        self.seed = seed
        self.classes_: tuple[str, ...] = STRATEGIES
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def _check_x(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise EmoscopeError(f"features should be a 2-D array, got shape {arr.shape}")
        if self.coef_ is not None and arr.shape[1] != self.coef_.shape[0]:
            raise EmoscopeError(
                f"features have {arr.shape[1]} columns; the planner was fitted on "
                f"{self.coef_.shape[0]}"
            )
        return arr

    def fit(self, x: Any, y: Sequence[str]) -> StrategyPlanner:
        """Fit on feature rows ``x`` and strategy names ``y`` (of :data:`STRATEGIES`)."""
        arr = self._check_x(x)
        if len(y) != len(arr) or not len(arr):
            raise EmoscopeError(f"{len(arr)} feature rows but {len(y)} strategies")
        unknown = sorted({s for s in y if s not in STRATEGIES})
        if unknown:
            raise EmoscopeError(f"unknown strategies {unknown}; expected: {', '.join(STRATEGIES)}")
        idx = np.array([STRATEGIES.index(s) for s in y])
        self.mean_ = arr.mean(0)
        self.scale_ = arr.std(0) + 1e-6
        z = (arr - self.mean_) / self.scale_
        n, d = z.shape
        k = len(STRATEGIES)
        onehot = np.eye(k)[idx]
        counts = onehot.sum(0)
        w_class = (
            n / (k * np.maximum(counts, 1.0)) if self.class_weight == "balanced" else np.ones(k)
        )
        sample_w = w_class[idx] / w_class[idx].sum()
        rng = np.random.default_rng(self.seed)
        w = rng.normal(0.0, 0.01, (d, k))
        b = np.log((counts + 1.0) / (n + k))
        params = [w, b]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        for step in range(1, self.epochs + 1):
            p = _softmax(z @ w + b)
            g = (p - onehot) * sample_w[:, None]
            grads = [z.T @ g + self.l2 * w, g.sum(0)]
            for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                m[i] = 0.9 * m[i] + 0.1 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad**2
                mh = m[i] / (1 - 0.9**step)
                vh = v[i] / (1 - 0.999**step)
                param -= self.lr * mh / (np.sqrt(vh) + 1e-8)
        self.coef_, self.intercept_ = w, b
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        """Array ``(n, 8)``: the probability of each strategy (columns = :attr:`classes_`)."""
        if self.coef_ is None or self.intercept_ is None:
            raise EmoscopeError("the planner is not fitted; call fit() or load() first")
        arr = self._check_x(x)
        z = (arr - self.mean_) / self.scale_
        return _softmax(z @ self.coef_ + self.intercept_)

    def predict(self, x: Any) -> list[str]:
        """The most probable strategy per row."""
        return [self.classes_[i] for i in self.predict_proba(x).argmax(1)]

    def save(self, path: str | Path) -> Path:
        """Write the planner folder (``config.json`` + ``weights.npz``)."""
        if (
            self.coef_ is None
            or self.intercept_ is None
            or self.mean_ is None
            or self.scale_ is None
        ):
            raise EmoscopeError("the planner is not fitted; nothing to save")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "weights.npz",
            coef=self.coef_.astype(np.float32),
            intercept=self.intercept_,
            mean=self.mean_,
            scale=self.scale_,
        )
        write_json(
            folder / "config.json",
            {
                "kind": "strategy-planner",
                "strategies": list(self.classes_),
                "n_features": int(self.coef_.shape[0]),
                "l2": self.l2,
                "epochs": self.epochs,
                "lr": self.lr,
                "class_weight": self.class_weight,
                "seed": self.seed,
            },
        )
        return folder

    @classmethod
    def load(cls, path: str | Path) -> StrategyPlanner:
        """Read a folder written by :meth:`save`."""
        folder = Path(path)
        try:
            config = json.loads((folder / "config.json").read_text("utf-8"))
            weights = np.load(folder / "weights.npz")
        except (OSError, ValueError) as e:
            raise EmoscopeError(f"{folder}: not a strategy-planner folder ({e})") from None
        if config.get("kind") != "strategy-planner" or tuple(config["strategies"]) != STRATEGIES:
            raise EmoscopeError(f"{folder}/config.json: not a planner over the ESConv strategies")
        planner = cls(
            l2=config["l2"],
            epochs=config["epochs"],
            lr=config["lr"],
            class_weight=config["class_weight"],
            seed=config["seed"],
        )
        planner.coef_ = weights["coef"].astype(np.float64)
        planner.intercept_ = weights["intercept"]
        planner.mean_ = weights["mean"]
        planner.scale_ = weights["scale"]
        return planner


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    out: np.ndarray = e / e.sum(1, keepdims=True)
    return out
