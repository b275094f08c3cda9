"""MELD reader on the miniature fixture and on malformed files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import DataWarning, load_dataset, load_meld
from emoscope.errors import DataError

HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
    "StartTime,EndTime\n"
)


def test_dialogues_sorted_numerically(fixture_root: Path) -> None:
    ds = load_dataset("meld", "test", fixture_root)
    assert ds.name == "meld" and ds.split == "test" and ds.taxonomy is not None
    assert ds.taxonomy.name == "meld"
    assert ds.dialogues is not None
    assert [d.id for d in ds.dialogues] == ["2", "10"]
    assert [u.id for u in ds.dialogues[0]] == ["2_0", "2_9", "2_10"]
    assert [e.id for e in ds.examples] == ["2_0", "2_9", "2_10", "10_0", "10_1"]
    assert [e.index for e in ds.examples] == [0, 1, 2, 0, 1]
    assert all(e.dialogue is ds.dialogues[0] for e in ds.examples[:3])
    assert ds.inputs() == ds.dialogues


def test_utterance_fields(fixture_root: Path) -> None:
    ds = load_meld("test", fixture_root)
    first = ds.examples[0]
    assert first.text == "Turn zero."  # surrounding spaces stripped
    assert first.labels == ("anger",)
    assert first.meta["line"] == 6
    utt = ds.dialogues[0][0]  # type: ignore[index]
    assert utt.speaker == "Joey"
    assert utt.meta == {
        "sentiment": "negative",
        "season": 4,
        "episode": 4,
        "start_time": "0:12:20,000",
        "end_time": "0:12:22,500",
    }
    quoted = ds.examples[3]
    assert quoted.text == "Oh no, it’s “ruined”."
    assert ds.examples[4].labels == ("surprise",)  # "Surprise" canonicalised


def test_taxonomy_mapping(fixture_root: Path) -> None:
    ds = load_dataset("meld", "test", fixture_root, taxonomy="ekman")
    assert ds.taxonomy is not None and ds.taxonomy.name == "ekman"
    assert [e.label for e in ds.examples] == ["anger", "joy", "neutral", "sadness", "surprise"]


def test_validation_split_alias(fixture_root: Path) -> None:
    assert len(load_dataset("meld", "validation", fixture_root)) == 1
    assert load_dataset("meld", "validation", fixture_root).split == "dev"


def _meld(write: Callable[[str, str | bytes], Path], rows: str) -> Path:
    path = write("root/meld/test_sent_emo.csv", HEADER + rows)
    return path.parents[1]


GOOD = '1,Hello.,Ross,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"\n'


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ('2,Hi.,Ross,joy,positive,0,1,1,1,"00:00:01,000"\n', "10 field(s) where the header has 11"),
        ('2,Hi.,Ross,happy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n', "unknown label 'happy'"),
        ('2,   ,Ross,joy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n', "empty text"),
        ('2,Hi.,Ross,joy,positive,zero,1,1,1,"0:0:1,0","0:0:2,0"\n', "Dialogue_ID is 'zero'"),
        ('2,Hi.,Ross,joy,positive,0,1.5,1,1,"0:0:1,0","0:0:2,0"\n', "Utterance_ID is '1.5'"),
        ('2,Hi.,Ross,joy,positive,0,0,1,1,"0:0:1,0","0:0:2,0"\n', "repeats line 2"),
    ],
)
def test_malformed_row(write: Callable[[str, str | bytes], Path], row: str, problem: str) -> None:
    root = _meld(write, GOOD + row)
    with pytest.raises(DataError) as info:
        load_meld("test", root)
    err = info.value
    assert err.line == 3
    assert err.path is not None and err.path.endswith("test_sent_emo.csv")
    assert problem in str(err)
    assert "test_sent_emo.csv, line 3" in str(err)
    assert err.expected


def test_unknown_label_lists_allowed(write: Callable[[str, str | bytes], Path]) -> None:
    root = _meld(write, '1,Hi.,Ross,happy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n')
    with pytest.raises(DataError, match=r"line 2: unknown label 'happy'; expected .*joy"):
        load_meld("test", root)


def test_multiline_field_reports_starting_line(write: Callable[[str, str | bytes], Path]) -> None:
    rows = GOOD + '2,"two\nlines",Ross,joy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n'
    rows += '3,Bad.,Ross,joy,positive,0,x,1,1,"0:0:1,0","0:0:2,0"\n'
    root = _meld(write, rows)
    with pytest.raises(DataError) as info:
        load_meld("test", root)
    assert info.value.line == 5  # the multi-line record occupies lines 3-4


def test_missing_column(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("root/meld/test_sent_emo.csv", "Utterance,Speaker,Emotion\nHi.,Ross,joy\n")
    with pytest.raises(DataError, match=r"line 1: header lacks column\(s\) Dialogue_ID"):
        load_meld("test", path.parents[1])


def test_invalid_utf8(write: Callable[[str, str | bytes], Path]) -> None:
    body = (HEADER + GOOD).encode() + b'2,caf\xe9,Ross,joy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n'
    path = write("root/meld/test_sent_emo.csv", body)
    with pytest.raises(DataError, match=r"line 3: invalid UTF-8 byte 0xe9.*UTF-8"):
        load_meld("test", path.parents[1])


def test_skip_bad_counts_and_warns(write: Callable[[str, str | bytes], Path]) -> None:
    rows = GOOD + '2,Hi.,Ross,happy,positive,0,1,1,1,"0:0:1,0","0:0:2,0"\n'
    rows += '3,Hey.,Joey,joy,positive,0,2,1,1,"0:0:1,0","0:0:2,0"\n'
    rows += "4,short row\n"
    body = (HEADER + rows).encode() + b'5,\xff,Ross,joy,positive,0,3,1,1,"0:0:1,0","0:0:2,0"\n'
    root = write("root/meld/test_sent_emo.csv", body).parents[1]
    with pytest.warns(DataWarning, match=r"skipped 3 malformed record\(s\) \(lines 3, 5, 6\)"):
        ds = load_meld("test", root, skip_bad=True)
    assert ds.skipped == 3
    assert [e.text for e in ds.examples] == ["Hello.", "Hey."]


def test_crlf_and_bom(write: Callable[[str, str | bytes], Path]) -> None:
    body = "\ufeff" + (HEADER + GOOD).replace("\n", "\r\n")
    root = write("root/meld/test_sent_emo.csv", body).parents[1]
    assert load_meld("test", root).examples[0].text == "Hello."


def test_root_may_be_the_dataset_folder(tmp_path: Path, fixture_root: Path) -> None:
    shutil.copy(fixture_root / "meld" / "test_sent_emo.csv", tmp_path)
    assert len(load_meld("test", tmp_path)) == 5
