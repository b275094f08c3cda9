"""EmoBank reader: scale conversion, splits, perspectives, individual ratings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import (
    DatasetOptionError,
    load_dataset,
    load_emobank,
    load_emobank_ratings,
)
from emoscope.datasets.emobank import sam_to_unit
from emoscope.errors import DataError


def test_scale() -> None:
    assert [sam_to_unit(x) for x in (1, 2, 3, 4, 5)] == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_combined(fixture_root: Path) -> None:
    ds = load_dataset("emobank", "test", fixture_root)
    assert ds.has_vad and ds.taxonomy is None
    assert [e.id for e in ds] == ["doc_11_30", "doc_31_50"]
    assert ds.examples[0].vad == (1.0, -1.0, 0.0)
    assert ds.examples[1].vad == (-1.0, 1.0, -0.5)
    assert all(e.labels == () for e in ds)
    assert ds.examples[0].meta["genre"] == "blog"
    assert [len(load_emobank(s, fixture_root)) for s in ("train", "dev", "test")] == [1, 1, 2]
    assert load_emobank("train", fixture_root).examples[0].text == 'She said "hello" and left.'


@pytest.mark.parametrize(
    ("perspective", "vad"), [("reader", (0.8, -0.5, 0.2)), ("writer", (0.5, 0.0, 0.0))]
)
def test_perspectives(fixture_root: Path, perspective: str, vad: tuple[float, ...]) -> None:
    ds = load_dataset("emobank", "test", fixture_root, perspective=perspective)
    ex = ds.examples[0]
    assert ex.text == "What a wonderful day."
    assert ex.vad == pytest.approx(vad)
    assert ex.meta["perspective"] == perspective and "n" in ex.meta and len(ex.meta["std"]) == 3


def test_bad_options(fixture_root: Path) -> None:
    with pytest.raises(DatasetOptionError, match="perspective"):
        load_dataset("emobank", "test", fixture_root, perspective="editor")
    with pytest.raises(DatasetOptionError, match="no categorical labels"):
        load_dataset("emobank", "test", fixture_root, taxonomy="ekman")
    with pytest.raises(DatasetOptionError, match="EmoBank only"):
        load_dataset("meld", "test", fixture_root, perspective="reader")


def test_ratings(fixture_root: Path) -> None:
    rows = load_emobank_ratings(fixture_root)
    assert [r["id"] for r in rows] == ["doc_11_30", "doc_11_30", "doc_31_50"]
    assert (rows[1]["v"], rows[1]["a"], rows[1]["d"]) == (0.5, -0.5, 0.0)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("x,test,3,3,7,Hi.\n", "D = 7.0 is outside the 1-5 SAM scale"),
        ("x,test,3,high,3,Hi.\n", "A is 'high', not a number"),
        ("x,tset,3,3,3,Hi.\n", "split is 'tset'"),
        ("x,test,3,3,3,\n", "empty text"),
    ],
)
def test_malformed(write: Callable[[str, str | bytes], Path], row: str, problem: str) -> None:
    root = write("root/emobank/emobank.csv", "id,split,V,A,D,text\n" + row).parents[1]
    with pytest.raises(DataError, match=r"emobank.csv, line 2: ") as info:
        load_emobank("test", root)
    assert problem in str(info.value)


def test_missing_perspective_rating(write: Callable[[str, str | bytes], Path]) -> None:
    write("root/emobank/emobank.csv", "id,split,V,A,D,text\nx,test,3,3,3,Hi.\n")
    root = write("root/emobank/reader.csv", "id,V,A,D\ny,3,3,3\n").parents[1]
    with pytest.raises(DataError, match=r"reader.csv: no reader rating for id 'x'"):
        load_emobank("test", root, perspective="reader")
