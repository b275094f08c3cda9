"""The dataset metadata as data (``datasets.toml``) and the options each reader owns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import emoscope.datasets as datasets
from emoscope.datasets import DATASETS, DatasetInfo, DatasetOptionError, load_dataset
from emoscope.datasets.registry import _KEYS, read_registry
from emoscope.errors import DataError

GOOD = """
[toy]
title = "Toy"
reader = "load_toy"
conversational = false
licence = "MIT"
url = "https://example.org/toy"
citation = "Someone (2026). Toy."
files = { test = "toy.csv" }
"""


def test_shipped_registry_describes_every_reader() -> None:
    assert list(DATASETS)[:4] == ["meld", "emorynlp", "goemotions", "emobank"]  # file order
    for name, info in DATASETS.items():
        assert info.name == name and info.title and info.files and info.citation
        assert callable(getattr(datasets, info.reader)), info.reader
    assert DATASETS["goemotions"].multi_label and not DATASETS["goemotions"].has_header
    assert DATASETS["emobank"].split_column == "split" and DATASETS["emobank"].taxonomy is None
    assert DATASETS["meld"].files["dev"] == "dev_sent_emo.csv"
    # every field of DatasetInfo but its name can be written in the file
    assert {f.name for f in dataclasses.fields(DatasetInfo)} == {"name", *_KEYS}


def test_read_registry_defaults() -> None:
    (info,) = read_registry(GOOD).values()
    assert info == DatasetInfo(
        name="toy",
        title="Toy",
        folder="toy",
        taxonomy=None,
        conversational=False,
        files={"test": "toy.csv"},
        citation="Someone (2026). Toy.",
        licence="MIT",
        url="https://example.org/toy",
        reader="load_toy",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("licence = ", "licenses = "), r"toy.toml: table \[toy\] has unknown key\(s\) licenses"),
        (('title = "Toy"\n', ""), r"table \[toy\] lacks 'title'; expected a str"),
        (("conversational = false", 'conversational = "no"'), "conversational = 'no'"),
        (('files = { test = "toy.csv" }', "files = { test = 3 }"), "files/extra_files"),
        (("[toy]", "[toy"), "invalid TOML"),
    ],
)
def test_read_registry_says_what_is_wrong(change: tuple[str, str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_registry(GOOD.replace(*change), "toy.toml")


def test_readers_own_their_options(fixture_root: Path) -> None:
    # another reader's option at its default changes nothing
    assert len(load_dataset("meld", "test", fixture_root, perspective="combined")) == len(
        load_dataset("meld", "test", fixture_root)
    )
    with pytest.raises(DatasetOptionError, match="unknown dataset option 'speed'"):
        load_dataset("meld", "test", fixture_root, speed=2)
    with pytest.raises(DatasetOptionError, match=r"use emoscope\.datasets\.load_eqbench\(\)"):
        load_dataset("eqbench", "test", fixture_root)
