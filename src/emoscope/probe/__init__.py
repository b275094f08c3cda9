"""Layer-wise emotion probes: where, how well and for how long a model encodes emotion.

Method from "Decoding Emotion in the Deep: A Systematic Study of How LLMs Represent, Retain,
and Express Emotion" (Zhang & Zhong, 2025, arXiv:2510.04064): freeze the model, read the hidden
state of every layer (:mod:`emoscope.activations`) and train a light classifier per layer.

* Probes: multinomial logistic regression (L2, full-batch L-BFGS on standardised features,
  at most 100 iterations, the penalty picked from 1e-3..1 on a held-out slice of the training
  set) and a small MLP (one hidden layer,
  early stopping). Both are implemented here in torch, so no scikit-learn is needed at run time.
* Scores per layer: held-out accuracy and macro-F1 with percentile bootstrap 95% intervals
  (resampling test examples).
* Control: the same pipeline on a randomly initialised copy of the model (same architecture and
  tokenizer, built from its config), so that what the probe reads is separated from what any
  random projection of the tokens would allow (the usual probing control).
* Zero-shot baseline: the model itself is asked for the label through a chat backend
  (:mod:`emoscope.stimuli` documents the backend protocol).
* Persistence: an emotional text is followed by neutral tokens; the probe is applied to the
  last-token state after each further token, giving accuracy against token offset (decoders).
* Malleability: the same texts under different system prompts; how the probe's read-out moves.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts
from emoscope.llm.parsing import parse_label
from emoscope.stats import bootstrap_ci, classification_scores

if TYPE_CHECKING:
    from emoscope.activations import Activations, LoadedModel
    from emoscope.datasets.base import Dataset

__all__ = [
    "NEUTRAL_CONTINUATION",
    "PROBE_KINDS",
    "LayerScore",
    "LinearProbe",
    "MLPProbe",
    "Probe",
    "ProbeCurve",
    "ProbeData",
    "ProbeRun",
    "bootstrap_ci",
    "classification_scores",
    "fit_probe",
    "malleability",
    "parse_label",
    "persistence_curve",
    "plot_layer_curves",
    "prepare_probe_data",
    "probe_layers",
    "run_probe",
    "zero_shot_baseline",
]

PROBE_KINDS = ("linear", "mlp")
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)

# Neutral filler (emoscope's own text) appended after an emotional text to measure persistence.
NEUTRAL_CONTINUATION = (
    "The meeting is on Tuesday at ten in the second floor office. Bring the printed agenda and "
    "the budget table. The room has a projector, twelve chairs and a whiteboard. After the "
    "meeting the minutes will be sent to every participant by email. The next item on the list "
    "is the schedule for the spring term, which starts in the first week of March. Classes run "
    "from nine to four, with a lunch break at noon. The library is open on weekdays and closes "
    "at six. Parking is available behind the main building, and the bus stops at the corner "
    "every fifteen minutes. Forms can be collected at the front desk and returned by Friday."
)


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


class LinearProbe:
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

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearProbe:
        """Fit on features ``x`` ``(n, d)`` and integer labels ``y``."""
        with _threads(self.num_threads):
            return self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> LinearProbe:
        torch = _torch()
        y = np.asarray(y, dtype=np.int64)
        k = self.n_classes or int(y.max()) + 1
        self._scale = _Standardiser(np.asarray(x, dtype=np.float32))
        xt = torch.from_numpy(self._scale(x))
        yt = torch.from_numpy(y)
        w = torch.zeros(xt.shape[1], k, requires_grad=True)
        b = torch.zeros(k, requires_grad=True)
        cw = _class_weights(y, k, self.class_weight)
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
        return self

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


class MLPProbe:
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

    def fit(self, x: np.ndarray, y: np.ndarray) -> MLPProbe:
        """Fit on features ``x`` ``(n, d)`` and integer labels ``y``."""
        with _threads(self.num_threads):
            return self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> MLPProbe:
        torch = _torch()
        y = np.asarray(y, dtype=np.int64)
        k = self.n_classes or int(y.max()) + 1
        self._scale = _Standardiser(np.asarray(x, dtype=np.float32))
        xs = self._scale(x)
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
        cw = _class_weights(y, k, self.class_weight)
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
        return self

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


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class ProbeData:
    """Texts and integer labels for probing, after filtering and subsampling."""

    labels: tuple[str, ...]
    train_texts: list[str]
    train_y: np.ndarray
    test_texts: list[str]
    test_y: np.ndarray
    notes: dict[str, Any] = field(default_factory=dict)


def _single_label(dataset: Dataset) -> tuple[list[str], list[str], int]:
    texts, labels, dropped = [], [], 0
    for ex in dataset.examples:
        if len(ex.labels) == 1:
            texts.append(ex.text)
            labels.append(ex.labels[0])
        else:
            dropped += 1
    return texts, labels, dropped


def prepare_probe_data(
    train: Dataset,
    test: Dataset,
    *,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> ProbeData:
    """Single-label examples of ``train`` and ``test``, randomly subsampled to the limits.

    Multi-label examples (e.g. GoEmotions comments whose labels map to two Ekman classes) are
    dropped and counted in ``notes``; the class list is the taxonomy's labels that occur in
    the training texts, and test examples of other classes are dropped too.
    """
    tr_texts, tr_labels, tr_dropped = _single_label(train)
    te_texts, te_labels, te_dropped = _single_label(test)
    if not tr_texts or not te_texts:
        raise EmoscopeError(
            f"{train.name}: no single-label examples to probe on "
            f"(train {len(tr_texts)}, test {len(te_texts)})"
        )
    order = train.taxonomy.labels if train.taxonomy is not None else tuple(sorted(set(tr_labels)))
    labels = tuple(lab for lab in order if lab in set(tr_labels))
    index = {lab: i for i, lab in enumerate(labels)}
    keep_te = [i for i, lab in enumerate(te_labels) if lab in index]
    te_unknown = len(te_labels) - len(keep_te)
    te_texts = [te_texts[i] for i in keep_te]
    te_labels = [te_labels[i] for i in keep_te]
    rng = np.random.default_rng(seed)
    n_tr_all, n_te_all = len(tr_texts), len(te_texts)
    tr_idx = np.arange(n_tr_all)
    te_idx = np.arange(n_te_all)
    if max_train is not None and n_tr_all > max_train:
        tr_idx = np.sort(rng.choice(n_tr_all, max_train, replace=False))
    if max_test is not None and n_te_all > max_test:
        te_idx = np.sort(rng.choice(n_te_all, max_test, replace=False))
    train_y = np.array([index[tr_labels[i]] for i in tr_idx], dtype=np.int64)
    test_y = np.array([index[te_labels[i]] for i in te_idx], dtype=np.int64)
    notes = {
        "train_split": train.split,
        "test_split": test.split,
        "single_label_only": True,
        "multi_label_dropped": {"train": tr_dropped, "test": te_dropped},
        "test_unknown_class_dropped": te_unknown,
        "available": {"train": n_tr_all, "test": n_te_all},
        "used": {"train": len(tr_idx), "test": len(te_idx)},
        "subsampled": bool(len(tr_idx) < n_tr_all or len(te_idx) < n_te_all),
        "subsample_seed": seed,
        "label_counts": {
            "train": {lab: int((train_y == i).sum()) for i, lab in enumerate(labels)},
            "test": {lab: int((test_y == i).sum()) for i, lab in enumerate(labels)},
        },
    }
    return ProbeData(
        labels, [tr_texts[i] for i in tr_idx], train_y, [te_texts[i] for i in te_idx], test_y,
        notes,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Zero-shot prompting baseline


def zero_shot_prompt(text: str, labels: Sequence[str]) -> str:
    """The classification question put to the model in the zero-shot baseline."""
    return (
        "Which emotion does the following text express? Answer with exactly one word from this "
        f"list: {', '.join(labels)}.\n\nText: {text}\n\nEmotion:"
    )


def zero_shot_baseline(
    backend: Any,
    texts: Sequence[str],
    gold: Sequence[int],
    labels: Sequence[str],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Ask the model for the label of each text through a chat backend; score its answers.

    An answer naming none of ``labels`` counts as wrong (and in ``unparsed``).
    """
    convs = [[{"role": "user", "content": zero_shot_prompt(t, labels)}] for t in texts]
    outputs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outputs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=max_new_tokens
        )
    parsed = [parse_label(o, labels) for o in outputs]
    index = {lab: i for i, lab in enumerate(labels)}
    pred = np.array([index[p] if p is not None else -1 for p in parsed])
    y = np.asarray(gold)
    acc, f1 = classification_scores(y, pred)
    ci = bootstrap_ci(y, pred, n_boot=n_boot, seed=seed)
    return {
        "n": len(texts),
        "accuracy": acc,
        "accuracy_ci": ci["accuracy"],
        "macro_f1": f1,
        "macro_f1_ci": ci["macro_f1"],
        "unparsed": int(sum(p is None for p in parsed)),
        "prompt": zero_shot_prompt("{text}", labels),
        "examples": [
            {"text": t, "output": o} for t, o in list(zip(texts, outputs, strict=True))[:5]
        ],
    }


# --------------------------------------------------------------------------------------------
# Persistence and malleability


def persistence_curve(
    lm: LoadedModel,
    probes: Mapping[int, Probe],
    texts: Sequence[str],
    y: Sequence[int],
    *,
    offsets: Sequence[int] = (0, 1, 2, 4, 8, 16, 32, 64),
    neutral_text: str = NEUTRAL_CONTINUATION,
    batch_size: int = 8,
    chat_format: bool = False,
) -> dict[str, Any]:
    """Accuracy of last-token probes at growing distances into a neutral continuation.

    Each text is followed by the tokens of ``neutral_text`` (repeated if needed to reach the
    largest offset). At offset ``k`` the probe of each layer reads the hidden state of the
    ``k``-th neutral token (offset 0 is the text's own last token), which in a causal model is
    the last-token state of the prefix "text + k neutral tokens". The probes must have been
    trained on last-token states of the same model, and with ``chat_format`` when they were
    (``run_probe(..., chat_format=True)``): each text is then rendered as a user turn
    followed by the generation prompt, so the neutral tokens stand where the answer would.

    Raises:
        EmoscopeError: the model is not causal, or an offset is negative.
    """
    from emoscope.activations import render_chat, token_activations

    if not lm.causal:
        raise EmoscopeError(
            "persistence needs a decoder (causal) model: an encoder's token states see the "
            "whole continuation"
        )
    offs = sorted({int(k) for k in offsets})
    if not offs or offs[0] < 0:
        raise EmoscopeError(f"offsets must be non-negative integers, got {list(offsets)}")
    tok = lm.tokenizer
    neutral = tok(" " + neutral_text, add_special_tokens=False)["input_ids"]
    while len(neutral) < offs[-1]:
        neutral = neutral + neutral
    layers = sorted(probes)
    seqs, ends = [], []
    templated = chat_format and bool(getattr(tok, "chat_template", None))
    for t in texts:
        if chat_format:
            t = render_chat(tok, [{"role": "user", "content": t}])
        ids = tok(t, add_special_tokens=not templated)["input_ids"]
        seqs.append(list(ids) + list(neutral[: offs[-1]]))
        ends.append(len(ids) - 1)
    states = token_activations(lm, seqs, layers=layers, batch_size=batch_size)
    gold = np.asarray(y)
    curves: dict[str, list[dict[str, float]]] = {}
    for li, lay in enumerate(layers):
        rows = []
        for k in offs:
            x = np.stack([s[li, e + k] for s, e in zip(states, ends, strict=True)])
            pred = probes[lay].predict(x)
            acc, f1 = classification_scores(gold, pred)
            rows.append({"offset": k, "accuracy": acc, "macro_f1": f1})
        curves[str(lay)] = rows
    return {
        "n": len(texts), "offsets": offs, "layers": curves, "neutral_text": neutral_text,
        "chat_format": chat_format,
    }  # fmt: skip


def malleability(
    lm: LoadedModel,
    probes: Mapping[int, Probe],
    labels: Sequence[str],
    texts: Sequence[str],
    y: Sequence[int],
    system_prompts: Mapping[str, str],
    *,
    batch_size: int = 16,
    max_length: int = 512,
) -> dict[str, Any]:
    """How system prompts move the probes' read-out of the same user texts.

    Every text is rendered as a chat turn (:func:`~emoscope.activations.render_chat`) with no
    system prompt (condition ``none``) and with each of ``system_prompts``; the probes read the
    last-token state. Per condition and layer: accuracy against the gold labels, the mean
    probability of each label, the shift of those means from ``none``, and the share of texts
    whose predicted label differs from ``none``. Probes should be trained on the same chat
    rendering without a system prompt (``run_probe(..., chat_format=True)``).
    """
    from emoscope.activations import extract_activations, render_chat

    layers = sorted(probes)
    gold = np.asarray(y)
    conditions: dict[str, str | None] = {"none": None, **dict(system_prompts)}
    out: dict[str, Any] = {"n": len(texts), "labels": list(labels), "conditions": {}}
    base_probs: dict[int, np.ndarray] = {}
    base_pred: dict[int, np.ndarray] = {}
    for name, system in conditions.items():
        rendered = []
        for t in texts:
            msgs = [] if system is None else [{"role": "system", "content": system}]
            rendered.append(render_chat(lm.tokenizer, [*msgs, {"role": "user", "content": t}]))
        templated = bool(getattr(lm.tokenizer, "chat_template", None))
        acts = extract_activations(
            lm, rendered, layers=layers, pooling="last", batch_size=batch_size,
            max_length=max_length, add_special_tokens=not templated,
        )  # fmt: skip
        per_layer = {}
        for lay in layers:
            probs = probes[lay].predict_proba(np.asarray(acts.layer(lay), dtype=np.float32))
            pred = probs.argmax(1)
            if name == "none":
                base_probs[lay], base_pred[lay] = probs, pred
            mean = probs.mean(0)
            shift = mean - base_probs[lay].mean(0)
            per_layer[str(lay)] = {
                "accuracy": float((pred == gold).mean()),
                "mean_probs": dict(zip(labels, map(float, mean), strict=True)),
                "shift_from_none": dict(zip(labels, map(float, shift), strict=True)),
                "changed_vs_none": float((pred != base_pred[lay]).mean()),
            }
        out["conditions"][name] = {"system_prompt": system, "layers": per_layer}
    return out


# --------------------------------------------------------------------------------------------
# The whole run


@dataclass
class ProbeRun:
    """What :func:`run_probe` produces: the JSON-ready report and the fitted probes."""

    report: dict[str, Any]
    probes: dict[int, Probe]
    lm: LoadedModel
    data: ProbeData


def _prefixed(say: Callable[[str], None], prefix: str, message: str) -> None:
    say(f"{prefix} {message}")


def _curve_dict(curve: ProbeCurve) -> dict[str, Any]:
    return curve.to_dict()


def run_probe(
    model: str | None,
    dataset: str,
    *,
    taxonomy: str | None = None,
    layers: str | Sequence[int] | None = "all",
    kind: str = "linear",
    pooling: str = "auto",
    control: bool = True,
    max_train: int | None = 8000,
    max_test: int | None = 2000,
    train_split: str = "train",
    test_split: str = "test",
    seed: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
    class_weight: str | None = None,
    chat_format: bool = False,
    data_root: str | Path | None = None,
    device: str = "cpu",
    activations_dir: str | Path | None = None,
    n_boot: int = 1000,
    zero_shot_backend: Any = None,
    zero_shot_limit: int | None = 500,
    progress: Callable[[str], None] | None = None,
) -> ProbeRun:
    """Probe every chosen layer of ``model`` on ``dataset`` (and of its random-init control).

    Args:
        model: path or Hub id (``None``/``"minilm"``: all-MiniLM-L6-v2).
        dataset: an :func:`emoscope.datasets.load_dataset` name (``goemotions``, ``meld`` ...).
        taxonomy: map the gold labels into this taxonomy first (e.g. ``ekman``).
        layers: see :func:`emoscope.activations.parse_layers`.
        kind: ``linear`` or ``mlp``.
        pooling: see :func:`emoscope.activations.extract_activations`.
        control: also probe a randomly initialised copy of the model.
        max_train, max_test: random subsample sizes (``None``: everything).
        chat_format: wrap each text as a user chat turn (for instruction-tuned decoders).
        activations_dir: stream activations to this folder (float16 ``.npy``) instead of RAM.
        zero_shot_backend: a chat backend (see :mod:`emoscope.stimuli`) for the zero-shot
            prompting baseline on the first ``zero_shot_limit`` test texts.
        progress: called with short status lines.
    """
    from emoscope.activations import extract_activations, load_model, parse_layers, render_chat
    from emoscope.datasets import load_dataset

    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    tr = load_dataset(dataset, train_split, root=data_root, taxonomy=taxonomy)
    te = load_dataset(dataset, test_split, root=data_root, taxonomy=taxonomy)
    data = prepare_probe_data(tr, te, max_train=max_train, max_test=max_test, seed=seed)
    say(f"{dataset}: {len(data.train_texts)} train / {len(data.test_texts)} test texts")
    report: dict[str, Any] = {
        "dataset": dataset,
        "taxonomy": tr.taxonomy.name if tr.taxonomy is not None else None,
        "labels": list(data.labels),
        "data": data.notes,
        "probe": kind,
        "class_weight": class_weight,
        "chat_format": chat_format,
        "max_length": max_length,
        "bootstrap": {"n_boot": n_boot, "level": 0.95, "method": "percentile"},
    }
    counts = np.bincount(data.train_y, minlength=len(data.labels))
    majority = int(counts.argmax())
    maj_acc, maj_f1 = classification_scores(data.test_y, np.full_like(data.test_y, majority))
    report["majority_baseline"] = {
        "label": data.labels[majority], "accuracy": maj_acc, "macro_f1": maj_f1,
    }  # fmt: skip

    curves: dict[str, Any] = {}
    fitted: dict[int, Probe] = {}
    main_lm: LoadedModel | None = None
    timings: dict[str, Any] = {}
    for variant in ("model", "control") if control else ("model",):
        t1 = time.perf_counter()
        lm = load_model(model, random_init=variant == "control", seed=seed, device=device)
        chosen = parse_layers(layers, lm.n_layers)

        def fmt(texts: list[str], lm: LoadedModel = lm) -> list[str]:
            if not chat_format:
                return texts
            return [render_chat(lm.tokenizer, [{"role": "user", "content": t}]) for t in texts]

        special = not (chat_format and getattr(lm.tokenizer, "chat_template", None))
        acts = {}
        for split, texts in (("train", data.train_texts), ("test", data.test_texts)):
            say(f"{variant}: reading {len(texts)} {split} texts")
            out_dir = None
            if activations_dir is not None:
                out_dir = Path(activations_dir) / variant / split
            acts[split] = extract_activations(
                lm, fmt(texts), layers=chosen, pooling=pooling, batch_size=batch_size,
                max_length=max_length, out_dir=out_dir, add_special_tokens=special,
            )  # fmt: skip
        t2 = time.perf_counter()
        curve, probes = probe_layers(
            acts["train"], data.train_y, acts["test"], data.test_y, kind=kind,
            n_classes=len(data.labels), class_weight=class_weight, n_boot=n_boot, seed=seed,
            progress=functools.partial(_prefixed, say, variant),
        )  # fmt: skip
        curve.random_init = variant == "control"
        curves[variant] = _curve_dict(curve)
        timings[variant] = {"extract": t2 - t1, "probe": time.perf_counter() - t2}
        if variant == "model":
            fitted, main_lm = probes, lm
            report["model"] = lm.name
            report["model_kind"] = lm.kind
            report["n_layers"] = lm.n_layers
            report["hidden_size"] = lm.hidden_size
            report["pooling"] = acts["train"].pooling
            report["layers"] = chosen
    report["curves"] = curves
    if zero_shot_backend is not None:
        n_zs = len(data.test_texts) if zero_shot_limit is None else zero_shot_limit
        say(f"zero-shot baseline on {min(n_zs, len(data.test_texts))} test texts")
        report["zero_shot"] = zero_shot_baseline(
            zero_shot_backend, data.test_texts[:n_zs], data.test_y[:n_zs].tolist(), data.labels,
            n_boot=n_boot, seed=seed,
        )  # fmt: skip
    report["seconds"] = {**timings, "total": time.perf_counter() - t0}
    assert main_lm is not None
    return ProbeRun(report, fitted, main_lm, data)


# --------------------------------------------------------------------------------------------
# Figure


def plot_layer_curves(
    panels: Sequence[tuple[str, Sequence[tuple[str, Mapping[str, Any]]]]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    baselines: Sequence[Mapping[str, Mapping[str, float]]] | None = None,
) -> Path:
    """Draw layer curves with bootstrap bands and write a PNG atomically.

    Args:
        panels: one row per panel: ``(title, [(legend label, curve dict), ...])`` where a curve
            dict is :meth:`ProbeCurve.to_dict` output (``scores`` with ``layer``, metric and
            ``<metric>_ci``).
        path: where to write the PNG.
        metrics: one column per metric.
        baselines: per panel, ``{name: {metric: value}}`` drawn as dotted horizontal lines
            (e.g. the majority-class baseline).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoscope._io import atomic_open

    names = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
    fig, axes = plt.subplots(
        len(panels), len(metrics), figsize=(4.6 * len(metrics), 3.4 * len(panels)), squeeze=False
    )
    for r, (title, curves) in enumerate(panels):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for label, curve in curves:
                xs = [s["layer"] for s in curve["scores"]]
                ys = [s[metric] for s in curve["scores"]]
                lo = [s[f"{metric}_ci"][0] for s in curve["scores"]]
                hi = [s[f"{metric}_ci"][1] for s in curve["scores"]]
                (line,) = ax.plot(xs, ys, marker="o", label=label)
                ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
            if baselines is not None and r < len(baselines):
                for name, vals in baselines[r].items():
                    if metric in vals and not math.isnan(vals[metric]):
                        ax.axhline(vals[metric], ls=":", color="grey", label=name)
            ax.set_title(f"{title}: {names.get(metric, metric)}", fontsize=10)
            ax.set_xlabel("layer (0 = embeddings)")
            ax.set_ylabel(names.get(metric, metric))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_open(out, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return out
