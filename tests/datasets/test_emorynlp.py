"""EmoryNLP reader: scene grouping, numeric ordering, speaker lists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import DataWarning, load_dataset, load_emorynlp
from emoscope.datasets.emorynlp import parse_speakers
from emoscope.errors import DataError

HEADER = "Utterance,Speaker,Emotion,Scene_ID,Utterance_ID,Season,Episode,Start_Time,End_Time\n"


def test_scenes_sorted_numerically(fixture_root: Path) -> None:
    ds = load_dataset("emorynlp", "test", fixture_root)
    assert ds.taxonomy is not None and ds.taxonomy.name == "emorynlp"
    assert ds.dialogues is not None
    # Episode 2 before episode 15; utterance 9 before 10.
    assert [d.id for d in ds.dialogues] == ["1_2_2", "1_15_1"]
    assert [u.id for u in ds.dialogues[1]] == ["1_15_1_9", "1_15_1_10"]
    assert [e.label for e in ds.examples] == ["peaceful", "scared", "mad", "joyful", "neutral"]


def test_speakers(fixture_root: Path) -> None:
    ds = load_emorynlp("test", fixture_root)
    assert ds.dialogues is not None
    scene = ds.dialogues[0]
    assert [u.speaker for u in scene] == ["Monica Geller & Phoebe Buffay", None, "Monica's Boss"]
    assert scene[0].meta["speakers"] == ["Monica Geller", "Phoebe Buffay"]
    assert scene[0].meta["season"] == 1 and scene[0].meta["scene"] == 2


@pytest.mark.parametrize(
    ("cell", "names"),
    [
        ("['Rachel Green']", ["Rachel Green"]),
        ("['A', 'B', 'C']", ["A", "B", "C"]),
        ("[]", []),
        ('["Monica\'s Boss"]', ["Monica's Boss"]),
        ("Gunther", ["Gunther"]),
        ("", []),
    ],
)
def test_parse_speakers(cell: str, names: list[str]) -> None:
    assert parse_speakers(cell) == names


@pytest.mark.parametrize("cell", ["['Rachel", "[1, 2]", "[__import__('os')]"])
def test_parse_speakers_rejects(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_speakers(cell)


def test_bad_speaker_cell(write: Callable[[str, str | bytes], Path]) -> None:
    row = 'Hi.,"[\'Rachel",Neutral,1,1,1,1,00:00:01.000,00:00:02.000\n'
    root = write("root/emorynlp/emorynlp_test_final.csv", HEADER + row).parents[1]
    with pytest.raises(DataError, match=r"line 2: unreadable speaker list.*expected a list"):
        load_emorynlp("test", root)


def test_bad_label_and_skip(write: Callable[[str, str | bytes], Path]) -> None:
    rows = "Hi.,['A'],Happy,1,1,1,1,0,0\nYo.,['B'],Joyful,1,2,1,1,0,0\n"
    root = write("root/emorynlp/emorynlp_test_final.csv", HEADER + rows).parents[1]
    with pytest.raises(DataError, match=r"line 2: unknown label 'Happy'; expected .*peaceful"):
        load_emorynlp("test", root)
    with pytest.warns(DataWarning, match="skipped 1"):
        ds = load_emorynlp("test", root, skip_bad=True)
    assert ds.skipped == 1 and [e.text for e in ds.examples] == ["Yo."]


def test_non_numeric_scene(write: Callable[[str, str | bytes], Path]) -> None:
    rows = "Hi.,['A'],Sad,one,1,1,1,0,0\n"
    root = write("root/emorynlp/emorynlp_test_final.csv", HEADER + rows).parents[1]
    with pytest.raises(DataError, match=r"line 2: Scene_ID is 'one', not a non-negative integer"):
        load_emorynlp("test", root)
