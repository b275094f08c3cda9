"""Data-root resolution, the registry, status, missing-data messages, shared file handling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import (
    DATASETS,
    DatasetOptionError,
    DataWarning,
    _common,
    data_root,
    dataset_status,
    load_dataset,
    load_emobench,
    load_eqbench,
    read_texts,
)
from emoscope.errors import DataError, DatasetNotFoundError, EmoscopeError


def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("EMOSCOPE_DATA", str(env))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"  # explicit, even if missing
    assert data_root() == env
    monkeypatch.setenv("EMOSCOPE_DATA", str(tmp_path / "missing"))
    assert data_root() == tmp_path / "missing"


def test_data_root_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert data_root() == tmp_path / "shared" / "data"
    checkout = Path(_common.__file__).resolve().parents[4] / "shared" / "data"
    monkeypatch.chdir(tmp_path)
    expected = checkout if checkout.is_dir() else tmp_path.parent / "shared" / "data"
    assert data_root() == expected


def test_missing_dataset_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("meld", "dev", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "meld" / "dev_sent_emo.csv") in msg
    assert "https://github.com/declare-lab/MELD" in msg
    assert "EMOSCOPE_DATA" in msg and "root argument" in msg
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, EmoscopeError)


def test_missing_dataset_message_lists_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setattr(
        _common, "_root_candidates", lambda root: [(first, "default A"), (second, "default B")]
    )
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("goemotions")
    msg = str(info.value)
    assert str(first / "goemotions" / "test.tsv") in msg and "also tried " + str(second) in msg


@pytest.mark.parametrize("loader", [load_emobench, load_eqbench])
def test_missing_benchmarks(tmp_path: Path, loader: Callable[..., object]) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"github\.com"):
        loader(root=tmp_path)


def test_bad_names() -> None:
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'iemocap'; known datasets"):
        load_dataset("iemocap")
    with pytest.raises(DatasetOptionError, match="unknown split 'val'"):
        load_dataset("meld", "val")


def test_registry() -> None:
    assert set(DATASETS) == {
        "meld",
        "emorynlp",
        "goemotions",
        "emobank",
        "emobench",
        "eqbench",
        "esconv",
    }
    assert DATASETS["meld"].conversational and DATASETS["meld"].taxonomy == "meld"
    assert DATASETS["goemotions"].multi_label
    assert DATASETS["emobank"].taxonomy is None
    assert all(i.url.startswith("https://github.com/") and i.citation for i in DATASETS.values())


def test_status(fixture_root: Path, tmp_path: Path) -> None:
    status = {s["name"]: s for s in dataset_status(fixture_root)}
    assert all(s["present"] for s in status.values())
    assert status["meld"]["splits"] == {"train": 3, "dev": 1, "test": 5}
    assert status["goemotions"]["splits"] == {"train": 2, "dev": 1, "test": 4}
    assert status["emobank"]["splits"] == {"train": 1, "dev": 1, "test": 2}
    assert status["emobench"]["splits"] == {"EU": 3, "EA": 2}
    assert status["eqbench"]["splits"] == {"test": 3}
    assert status["emorynlp"]["get"] == "https://github.com/emorynlp/emotion-detection"
    empty = {s["name"]: s for s in dataset_status(tmp_path)}
    assert not any(s["present"] for s in empty.values())
    assert empty["meld"]["missing"][0] == str(tmp_path / "meld" / "train_sent_emo.csv")
    assert empty["meld"]["path"] == str(tmp_path / "meld") and empty["meld"]["splits"] == {}


def test_warning_lists_first_lines(write: Callable[[str, str | bytes], Path]) -> None:
    rows = "".join(f",joy\nok{i},joy\n" for i in range(7))
    path = write("many.csv", "text,label\n" + rows)
    with pytest.warns(DataWarning) as record:
        ds = read_texts(path, skip_bad=True)
    assert ds.skipped == 7 and len(ds) == 7
    msg = str(record[0].message)
    assert "skipped 7 malformed record(s) (lines 2, 4, 6, 8, 10, ...)" in msg
    assert "many.csv, line 2: empty text" in msg


def test_no_warning_when_clean(fixture_root: Path, recwarn: pytest.WarningsRecorder) -> None:
    assert load_dataset("meld", "test", fixture_root, skip_bad=True).skipped == 0
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


def test_unclosed_quote_hint(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("q.csv", 'text,label\nok,joy\n"oops,joy\nmore,joy\n')
    with pytest.raises(DataError, match=r"line 3: .*a quoted field may be left open"):
        read_texts(path)


def test_invalid_utf8_jsonl_line(write: Callable[[str, str | bytes], Path]) -> None:
    path = write("u.jsonl", b'{"text": "ok"}\n{"text": "ok"}\n{"text": "\xc3("}\n')
    with pytest.raises(DataError, match=r"u.jsonl, line 3: invalid UTF-8 byte 0xc3"):
        read_texts(path)
    with pytest.warns(DataWarning, match="line 3"):
        assert len(read_texts(path, skip_bad=True)) == 2


def test_empty_file(write: Callable[[str, str | bytes], Path]) -> None:
    with pytest.raises(DataError, match=r"line 1: empty file"):
        read_texts(write("e.csv", ""))
    assert len(read_texts(write("h.csv", "text,label\n"))) == 0
