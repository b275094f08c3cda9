"""Generic readers: read_texts, read_dialogues, read_dialogue_file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import DataWarning, read_dialogue_file, read_dialogues, read_texts
from emoscope.errors import DataError, DatasetNotFoundError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"


def test_texts_csv_multi_label_and_vad() -> None:
    ds = read_texts(
        FIXTURES / "texts.csv",
        taxonomy="ekman",
        label_sep=";",
        vad_cols=("v", "a", "d"),
        id_col="id",
    )
    assert ds.name == "texts" and ds.taxonomy is not None and ds.taxonomy.name == "ekman"
    assert [e.labels for e in ds] == [("joy",), ("anger", "disgust"), ("neutral",)]
    assert ds.examples[1].text == 'This is "awful",\ntruly.'
    assert ds.examples[1].vad == (-0.7, 0.6, 0.2)
    assert [e.id for e in ds] == ["t1", "t2", "t3"]
    assert [e.meta["line"] for e in ds] == [2, 3, 5]


def test_texts_without_taxonomy_keeps_labels() -> None:
    ds = read_texts(FIXTURES / "texts.csv")
    assert ds.taxonomy is None and ds.examples[1].labels == ("Anger;disgust",)


def test_texts_json_and_jsonl() -> None:
    jl = read_texts(FIXTURES / "texts.jsonl", taxonomy="ekman", id_col="id")
    assert [e.labels for e in jl] == [("joy",), ("fear", "sadness")]
    assert [e.id for e in jl] == ["1", "2"] and [e.meta["line"] for e in jl] == [1, 3]
    js = read_texts(FIXTURES / "texts.json", taxonomy="ekman")
    assert [e.label for e in js] == ["joy", "anger"]
    assert [e.meta["line"] for e in js] == [2, 3]


def test_texts_unlabelled(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("plain.csv", "text\nhello\nworld\n")
    assert [e.labels for e in read_texts(path)] == [(), ()]
    with pytest.raises(DataError, match=r"line 1: header lacks column\(s\) emotion"):
        read_texts(path, label_col="emotion")


def test_texts_unknown_label(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("t.csv", "text,label\nok,joy\nhm,happy\n")
    with pytest.raises(DataError) as info:
        read_texts(path, taxonomy="ekman")
    msg = str(info.value)
    assert "t.csv, line 3: unknown label 'happy'" in msg
    assert "anger, disgust, fear, joy, sadness, surprise, neutral" in msg


def test_texts_vad_scale(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("v.tsv", "text\tV\tA\tD\nhi\t5\t1\t3\n")
    ds = read_texts(path, label_col=None, vad_cols=("V", "A", "D"), vad_scale=(1, 5))
    assert ds.examples[0].vad == (1.0, -1.0, 0.0)
    with pytest.raises(DataError, match=r"line 2: V = 5.0 is outside \[-1, 1\]"):
        read_texts(path, label_col=None, vad_cols=("V", "A", "D"))


@pytest.mark.parametrize(
    ("name", "content", "line", "problem"),
    [
        ("a.csv", "text,label\nfine,joy\n,joy\n", 3, "empty text"),
        ("a.csv", "text,label\nfine,joy\nx,joy,extra\n", 3, "3 field(s) where the header has 2"),
        ("a.jsonl", '{"text": "ok", "label": "joy"}\n{"label": "joy"}\n', 2, "missing field"),
        ("a.jsonl", '{"text": "ok", "label": "joy"}\n["x"]\n', 2, "a JSON list, not an object"),
        (
            "a.json",
            '[\n{"text": "ok", "label": "joy"},\n{"text": 3.5, "label": []}\n]',
            3,
            "empty label",
        ),
        ("a.json", '[\n{"text": "ok", "label": "joy"}\n{"text": "x"}\n]', 3, "malformed JSON"),
    ],
)
def test_texts_malformed(
    write: Callable[[str, str | bytes], Path], name: str, content: str, line: int, problem: str
) -> None:
    path = write(name, content)
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert info.value.line == line and problem in str(info.value)


def test_texts_skip_bad(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("s.csv", "text,label\nok,joy\n,joy\nfine,sadness\nbad,happy\n")
    with pytest.warns(DataWarning, match=r"skipped 2 malformed record\(s\) \(lines 3, 5\)"):
        ds = read_texts(path, taxonomy="ekman", skip_bad=True)
    assert ds.skipped == 2 and [e.text for e in ds] == ["ok", "fine"]


def test_unsupported_and_missing(tmp_path: Path, write: Callable[[str, str | bytes], Path]) -> None:
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        read_texts(write("a.xlsx", "x"))
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        read_texts(tmp_path / "nope.csv")


def test_dialogues_csv() -> None:
    ds = read_dialogues(FIXTURES / "dialogues.csv", label_col="label", taxonomy="ekman")
    assert ds.dialogues is not None
    assert [d.id for d in ds.dialogues] == ["b", "a"]  # order of first appearance
    assert [u.text for u in ds.dialogues[1]] == ["Guess what?", "What?", "We won!"]
    assert [u.id for u in ds.dialogues[1]] == ["a_1", "a_9", "a_10"]
    assert [e.label for e in ds] == ["anger", "sadness", "surprise", "surprise", "joy"]
    assert [e.index for e in ds] == [0, 1, 0, 1, 2]
    assert ds.dialogues[0].speakers == ["Lee", "Sam"]


def test_dialogues_csv_file_order(write: Callable[[str, str | bytes], Path]) -> None:
    ds = read_dialogues(FIXTURES / "dialogues.csv", turn_col=None)
    assert ds.dialogues is not None
    assert [u.text for u in ds.dialogues[1]] == ["Guess what?", "We won!", "What?"]
    assert all(e.labels == () for e in ds)
    one = read_dialogues(write("one.csv", "speaker,text\nA,Hi\nB,Hello\n"))
    assert one.dialogues is not None and len(one.dialogues) == 1 and len(one) == 2


def test_dialogues_csv_errors(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("d.csv", "dialogue_id,turn,text\na,1,Hi\na,x,Yo\n")
    with pytest.raises(DataError, match=r"d.csv, line 3: turn is 'x', not a number"):
        read_dialogues(path)
    path = write("e.csv", "dialogue_id,turn,text\na,1,Hi\na,1,Yo\n")
    with pytest.raises(DataError, match=r"line 3: turn 1 of dialogue 'a' repeats line 2"):
        read_dialogues(path)
    with pytest.raises(DataError, match=r"header lacks column\(s\) conv"):
        read_dialogues(path, dialogue_col="conv")


def test_dialogues_json_and_jsonl() -> None:
    js = read_dialogues(FIXTURES / "dialogues.json", taxonomy="ekman")
    assert js.dialogues is not None and [d.id for d in js.dialogues] == ["x", "2"]
    assert [e.label for e in js] == ["sadness", "fear", "joy"]
    assert [e.meta["line"] for e in js] == [2, 3, 3]
    jl = read_dialogues(FIXTURES / "dialogues.jsonl")
    assert jl.dialogues is not None and [len(d) for d in jl.dialogues] == [2, 2]
    assert jl.dialogues[1][1].text == "Out." and jl.dialogues[1][1].speaker is None
    assert [e.labels for e in jl] == [("joy",), ("neutral",), (), ()]


def test_dialogues_json_errors(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("bad.json", '[\n{"text": "a"},\n{"utterances": []}\n]')
    with pytest.raises(DataError, match=r"line 2: a single turn in a list of dialogues"):
        read_dialogues(path)
    path = write("lab.jsonl", '[{"text": "a", "label": "happy"}]\n')
    with pytest.raises(DataError, match=r"line 1: unknown label 'happy'"):
        read_dialogues(path, taxonomy="ekman")
    path = write("notext.jsonl", '[{"text": "a"}]\n[{"speaker": "b"}]\n')
    with pytest.raises(DataError, match=r"line 2: dialogue '2', turn 1 has no 'text'"):
        read_dialogues(path)
    with pytest.warns(DataWarning, match="skipped 1"):
        assert len(read_dialogues(path, skip_bad=True)) == 1


def test_dialogue_file_forms(write: Callable[[str, str | bytes], Path]) -> None:
    (turns,) = read_dialogue_file(FIXTURES / "dialogue_turns.json")
    assert [u.speaker for u in turns] == ["User", "Agent", None]
    single = write("one.json", '{"id": "z", "utterances": [{"text": "Hi", "label": 5}]}')
    (d,) = read_dialogue_file(single)  # labels are ignored, even malformed ones
    assert d.id == "z" and d[0].text == "Hi"
    assert len(read_dialogue_file(FIXTURES / "dialogues.json")) == 2
    assert len(read_dialogue_file(FIXTURES / "dialogues.jsonl")) == 2
    assert len(read_dialogue_file(FIXTURES / "dialogues.csv")) == 2
    with pytest.raises(DataError, match=r"line 2: .*has no 'text'"):
        read_dialogue_file(write("x.json", '[\n{"speaker": "A"}\n]'))


def test_dialogues_csv_skip_bad_leaves_no_empty_dialogue(
    write: Callable[[str, str | bytes], Path],
) -> None:
    path = write("s.csv", "dialogue_id,turn,text\nz,1,\na,1,Hi\na,2,\na,3,Yo\n")
    with pytest.warns(DataWarning, match=r"skipped 2 .*lines 2, 4"):
        ds = read_dialogues(path, skip_bad=True)
    assert ds.dialogues is not None and [d.id for d in ds.dialogues] == ["a"]
    assert [u.id for u in ds.dialogues[0]] == ["a_1", "a_3"] and ds.skipped == 2
