"""The probes: light classifiers over activation vectors, fitted on integer class ids.

Multinomial logistic regression (L2, full-batch L-BFGS on standardised features, at most 100
iterations; :func:`fit_probe` picks the penalty from 1e-3..1 on a held-out slice of the training
set) and a small MLP (one hidden layer, early stopping), both in torch so that no scikit-learn
is needed at run time. The method: Zhang & Zhong (2025), "Decoding Emotion in the Deep: A
Systematic Study of How LLMs Represent, Retain, and Express Emotion", arXiv:2510.04064.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.stats import classification_scores

if TYPE_CHECKING:
    pass

__all__ = [
    "L2_GRID",
    "PROBE_KINDS",
    "LinearProbe",
    "MLPProbe",
    "Probe",
    "fit_probe",
]


PROBE_KINDS = ("linear", "mlp")
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


class Probe(Protocol):
    """A classifier over activation vectors (fitted on integer class ids)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Probe:
        """Fit on ``(n, d)`` features and ``n`` integer labels."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class id per row."""
        ...


def _torch() -> Any:
    import torch

    return torch


class _threads:
    """Run torch on ``n`` threads inside the block (``None``: leave as is), then restore.

    Probes are small: on a busy machine thread synchronisation costs more than it gains.
    """

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.saved = 0

    def __enter__(self) -> None:
        if self.n is not None:
            torch = _torch()
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n is not None:
            _torch().set_num_threads(self.saved)


class _Standardiser:
    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(0, dtype=np.float64).astype(np.float32)
        self.std = (x.std(0, dtype=np.float64) + 1e-6).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) - self.mean) / self.std


def _class_weights(y: np.ndarray, n_classes: int, mode: str | None) -> np.ndarray | None:
    if mode is None:
        return None
    if mode != "balanced":
        raise EmoscopeError(f"unknown class_weight {mode!r}; expected None or 'balanced'")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


class _TorchProbe:
    """What both probes share: standardised features, class weights, a thread limit."""

    n_classes: int | None
    class_weight: str | None
    num_threads: int | None
    _scale: _Standardiser | None

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        """Fit on features ``x`` ``(n, d)`` and integer labels ``y``."""
        with _threads(self.num_threads):
            y = np.asarray(y, dtype=np.int64)
            k = self.n_classes or int(y.max()) + 1
            self._scale = _Standardiser(np.asarray(x, dtype=np.float32))
            self._fit(self._scale(x), y, k, _class_weights(y, k, self.class_weight))
        return self

    def _fit(self, xs: np.ndarray, y: np.ndarray, k: int, cw: np.ndarray | None) -> None:
        raise NotImplementedError


class LinearProbe(_TorchProbe):
    """Multinomial logistic regression with an L2 penalty, fitted by full-batch L-BFGS.

    The loss is the mean cross-entropy plus ``l2 / 2 * ||W||^2`` on standardised features.
    """

    kind = "linear"

    def __init__(
        self,
        l2: float = 1e-3,
        *,
        max_iter: int = 100,
        class_weight: str | None = None,
        n_classes: int | None = None,
        num_threads: int | None = 1,
    ) -> None:
        self.l2 = float(l2)
        self.num_threads = num_threads
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_classes = n_classes
        self.weight: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self._scale: _Standardiser | None = None

    def _fit(self, xs: np.ndarray, y: np.ndarray, k: int, cw: np.ndarray | None) -> None:
        torch = _torch()
        xt = torch.from_numpy(xs)
        yt = torch.from_numpy(y)
        w = torch.zeros(xt.shape[1], k, requires_grad=True)
        b = torch.zeros(k, requires_grad=True)
        weight = None if cw is None else torch.from_numpy(cw)
        opt = torch.optim.LBFGS(
            [w, b], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe",
            tolerance_grad=1e-6, tolerance_change=1e-9, history_size=20,
        )  # fmt: skip

        def closure() -> Any:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xt @ w + b, yt, weight=weight)
            loss = loss + 0.5 * self.l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weight = w.detach().numpy()
        self.bias = b.detach().numpy()

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Logits, shape ``(n, n_classes)``."""
        if self.weight is None or self.bias is None or self._scale is None:
            raise EmoscopeError("the probe is not fitted yet")
        logits: np.ndarray = self._scale(x) @ self.weight + self.bias
        return logits

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities."""
        z = self.decision_function(x)
        z = np.exp(z - z.max(1, keepdims=True))
        out: np.ndarray = z / z.sum(1, keepdims=True)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class id per row."""
        out: np.ndarray = self.decision_function(x).argmax(1)
        return out


class MLPProbe(_TorchProbe):
    """A small MLP (one ReLU hidden layer with dropout) trained by Adam with early stopping.

    A tenth of the training set (at least one example) is held out to pick the epoch with the
    best accuracy; the weights of that epoch are kept.
    """

    kind = "mlp"

    def __init__(
        self,
        hidden: int = 256,
        *,
        epochs: int = 60,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.1,
        batch_size: int = 256,
        patience: int = 6,
        class_weight: str | None = None,
        n_classes: int | None = None,
        seed: int = 0,
        num_threads: int | None = 1,
    ) -> None:
        self.num_threads = num_threads
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batch_size = batch_size
        self.patience = patience
        self.class_weight = class_weight
        self.n_classes = n_classes
        self.seed = seed
        self.net: Any = None
        self._scale: _Standardiser | None = None

    def _fit(self, xs: np.ndarray, y: np.ndarray, k: int, cw: np.ndarray | None) -> None:
        torch = _torch()
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(y))
        n_val = max(1, len(y) // 10) if len(y) >= 10 else 0
        val, tr = perm[:n_val], perm[n_val:]
        torch.manual_seed(self.seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(xs.shape[1], self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, k),
        )
        loss_fn = torch.nn.CrossEntropyLoss(weight=None if cw is None else torch.from_numpy(cw))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = torch.from_numpy(xs), torch.from_numpy(y)
        best, best_state, stale = -1.0, None, 0
        for _ in range(self.epochs):
            net.train()
            order = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)]
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                opt.zero_grad()
                loss_fn(net(xt[batch]), yt[batch]).backward()
                opt.step()
            if n_val == 0:
                continue
            net.eval()
            with torch.no_grad():
                acc = float((net(xt[val]).argmax(1) == yt[val]).float().mean())
            if acc > best:
                best, stale = acc, 0
                best_state = {k_: v.clone() for k_, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.net = net

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities."""
        torch = _torch()
        if self.net is None or self._scale is None:
            raise EmoscopeError("the probe is not fitted yet")
        with torch.no_grad():
            z = self.net(torch.from_numpy(self._scale(x)))
            out: np.ndarray = torch.softmax(z, 1).numpy()
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class id per row."""
        out: np.ndarray = self.predict_proba(x).argmax(1)
        return out


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    kind: str = "linear",
    *,
    n_classes: int | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    class_weight: str | None = None,
    seed: int = 0,
) -> tuple[Probe, float | None]:
    """Fit one probe; for ``linear`` the L2 penalty is chosen on a held-out 15% of ``x``.

    Returns the probe refitted on all of ``x`` and the chosen penalty (``None`` for ``mlp``).
    """
    if kind not in PROBE_KINDS:
        raise EmoscopeError(f"unknown probe {kind!r}; expected one of: {', '.join(PROBE_KINDS)}")
    y = np.asarray(y, dtype=np.int64)
    k = n_classes or int(y.max()) + 1
    if kind == "mlp":
        return MLPProbe(n_classes=k, class_weight=class_weight, seed=seed).fit(x, y), None
    grid = list(l2_grid)
    chosen = grid[0]
    if len(grid) > 1 and len(y) >= 20:
        perm = np.random.default_rng(seed).permutation(len(y))
        n_val = max(1, int(0.15 * len(y)))
        val, tr = perm[:n_val], perm[n_val:]
        xa = np.asarray(x, dtype=np.float32)
        best = -1.0
        for l2 in grid:
            p = LinearProbe(l2, n_classes=k, class_weight=class_weight).fit(xa[tr], y[tr])
            acc, f1 = classification_scores(y[val], p.predict(xa[val]))
            score = f1 if class_weight else acc
            if score > best + 1e-9:
                best, chosen = score, l2
    probe = LinearProbe(chosen, n_classes=k, class_weight=class_weight).fit(x, y)
    return probe, chosen
