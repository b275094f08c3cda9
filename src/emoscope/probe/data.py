"""Probe data: single-label texts and integer class ids from a train and a test dataset, with
optional seeded subsampling and notes of what was dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError

if TYPE_CHECKING:
    from emoscope.datasets.base import Dataset

__all__ = [
    "ProbeData",
    "prepare_probe_data",
]


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
