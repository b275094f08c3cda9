"""The readers on the real data files (skipped when ../shared/data or EMOSCOPE_DATA is absent)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import (
    dataset_status,
    load_dataset,
    load_emobank_ratings,
    load_emobench,
    load_eqbench,
)
from emoscope.datasets.base import Dataset

RootFor = Callable[[str], Path]

COUNTS = {
    "meld": {"train": 9989, "dev": 1109, "test": 2610},
    "emorynlp": {"train": 7551, "dev": 954, "test": 984},
    "goemotions": {"train": 43410, "dev": 5426, "test": 5427},
    "emobank": {"train": 8062, "dev": 1000, "test": 1000},
}
DIALOGUES = {"meld": {"train": 1038, "dev": 114, "test": 280}}


def _load(root: Path, name: str, split: str, **kw: object) -> Dataset:
    # Real files must load without a single skipped or warned-about row.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(name, split, root, **kw)  # type: ignore[arg-type]
    assert ds.skipped == 0
    return ds


@pytest.mark.parametrize("name", list(COUNTS))
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_counts(real_root: RootFor, name: str, split: str) -> None:
    ds = _load(real_root(name), name, split)
    assert len(ds) == COUNTS[name][split]
    if name in DIALOGUES:
        assert ds.dialogues is not None and len(ds.dialogues) == DIALOGUES[name][split]
    if ds.dialogues is not None:
        assert sum(len(d) for d in ds.dialogues) == len(ds)


def test_meld_order(real_root: RootFor) -> None:
    ds = _load(real_root("meld"), "meld", "train")
    assert ds.dialogues is not None
    ids = [int(d.id or -1) for d in ds.dialogues]
    assert ids == sorted(ids)
    longest = max(ds.dialogues, key=len)
    turns = [int((u.id or "").split("_")[1]) for u in longest]
    assert turns == sorted(turns) and len(turns) > 10  # 10 follows 9, not 1
    assert any("’" in e.text for e in ds)
    assert {lab for e in ds for lab in e.labels} == set(ds.taxonomy.labels)  # type: ignore[union-attr]


def test_emorynlp_speakers(real_root: RootFor) -> None:
    ds = _load(real_root("emorynlp"), "emorynlp", "train")
    assert ds.dialogues is not None and len(ds.dialogues) == 659
    speakers = [u.speaker for d in ds.dialogues for u in d]
    assert "Monica Geller & Phoebe Buffay" in speakers
    assert not any(s and s.startswith("[") for s in speakers)
    assert {lab for e in ds for lab in e.labels} == {
        "neutral",
        "joyful",
        "peaceful",
        "powerful",
        "scared",
        "mad",
        "sad",
    }


def test_goemotions_labels(real_root: RootFor) -> None:
    root = real_root("goemotions")
    ds = _load(root, "goemotions", "dev")
    assert sum(len(e.labels) > 1 for e in ds) == 878
    assert ds.examples[1].labels == ("approval", "neutral")
    assert any('"' in e.text for e in ds)  # CSV-style quoting was undone
    ekman = _load(root, "goemotions", "dev", taxonomy="ekman")
    assert ekman.taxonomy is not None and ekman.taxonomy.name == "ekman"
    assert {lab for e in ekman for lab in e.labels} <= set(ekman.taxonomy.labels)
    assert ekman.examples[1].labels == ("joy", "neutral")


def test_emobank(real_root: RootFor) -> None:
    root = real_root("emobank")
    ds = _load(root, "emobank", "test")
    assert all(e.vad is not None and all(-1 <= x <= 1 for x in e.vad) for e in ds)
    first = _load(root, "emobank", "train").examples[0]
    assert first.id == "110CYL068_1036_1079" and first.vad == pytest.approx((0.0, 0.0, 0.1))
    for perspective in ("reader", "writer"):
        assert len(_load(root, "emobank", "dev", perspective=perspective)) == 1000
    ratings = load_emobank_ratings(root)
    assert len(ratings) == 53055
    assert {r["v"] for r in ratings} <= {-1.0, -0.5, 0.0, 0.5, 1.0}


def test_emobench(real_root: RootFor) -> None:
    root = real_root("emobench")
    for task in ("EU", "EA"):
        both = load_emobench(task, root, language=None)
        assert len(both) == 400
        assert len(load_emobench(task, root)) == 200
        assert {it.language for it in both} == {"en", "zh"}
    eu = load_emobench("EU", root)
    assert all(it.emotion_label in it.emotion_choices for it in eu)
    assert {it.subcategory for it in load_emobench("EA", root)} == {"Action", "Response"}


def test_eqbench(real_root: RootFor) -> None:
    items = load_eqbench(real_root("eqbench"))
    assert len(items) == 171 and items[0].id == "1" and items[-1].id == "171"
    assert all(len(it.emotions) == 4 and it.dialogue for it in items)
    assert all(it.character for it in items)
    assert sum(sum(it.reference.values()) == 10 for it in items) == 170
    assert all(it.reference_fullscale is not None for it in items)


def test_status(real_root: RootFor) -> None:
    root = real_root("meld")
    status = {s["name"]: s for s in dataset_status(root)}
    for name, counts in COUNTS.items():
        if status[name]["present"]:
            assert status[name]["splits"] == counts
