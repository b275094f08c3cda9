"""GoEmotions reader: multi-label ids, CSV quoting inside TSV, Ekman mapping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import DataWarning, load_dataset, load_goemotions
from emoscope.errors import DataError


def test_multi_label(fixture_root: Path) -> None:
    ds = load_dataset("goemotions", "test", fixture_root)
    assert ds.multi_label and ds.taxonomy is not None and ds.taxonomy.name == "goemotions"
    assert ds.dialogues is None and ds.inputs() == [e.text for e in ds]
    assert [e.labels for e in ds] == [
        ("love", "joy"),
        ("anger", "annoyance"),
        ("neutral",),
        ("surprise", "confusion", "curiosity"),
    ]
    assert [e.id for e in ds] == ["c001", "c002", "c003", "c004"]
    assert ds.examples[1].text == 'He said "stop" and left.'


def test_ekman_mapping(fixture_root: Path) -> None:
    ds = load_dataset("goemotions", "test", fixture_root, taxonomy="ekman")
    assert ds.taxonomy is not None and ds.taxonomy.name == "ekman"
    assert ds.multi_label  # sets of Ekman labels
    assert [e.labels for e in ds] == [("joy",), ("anger",), ("neutral",), ("surprise",)]
    assert ds.examples[0].meta["goemotions"] == ("love", "joy")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Hi\t28\tx\n", "label ids '28'"),
        ("Hi\tjoy\tx\n", "label ids 'joy'"),
        ("Hi\t1,\tx\n", "label ids '1,'"),
        ("Hi\t1\n", "2 field(s) instead of 3"),
        (" \t1\tx\n", "empty text"),
    ],
)
def test_malformed(write: Callable[[str, str | bytes], Path], line: str, problem: str) -> None:
    root = write("root/goemotions/test.tsv", "Fine\t1\tok\n" + line).parents[1]
    with pytest.raises(DataError) as info:
        load_goemotions("test", root)
    assert info.value.line == 2 and problem in str(info.value)
    assert "3 tab-separated fields" in str(info.value)


def test_skip_bad(write: Callable[[str, str | bytes], Path]) -> None:
    root = write("root/goemotions/test.tsv", "A\t99\tx\nB\t1\ty\nC\n").parents[1]
    with pytest.warns(DataWarning, match=r"skipped 2 .*lines 1, 3"):
        ds = load_goemotions("test", root, skip_bad=True)
    assert ds.skipped == 2 and [e.text for e in ds] == ["B"]


def test_label_file_is_checked(write: Callable[[str, str | bytes], Path]) -> None:
    write("root/goemotions/test.tsv", "A\t0\tx\n")
    root = write("root/goemotions/labels.txt", "admiration\nhappiness\n").parents[1]
    with pytest.raises(DataError, match=r"labels.txt, line 2: unknown label 'happiness'"):
        load_goemotions("test", root)


def test_without_label_file(write: Callable[[str, str | bytes], Path]) -> None:
    root = write("root/goemotions/test.tsv", "A\t27\tx\n").parents[1]
    assert load_goemotions("test", root).examples[0].labels == ("neutral",)
