"""ESConv reader: supporter turns with strategies, strategy names, failed conversations."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import (
    DatasetOptionError,
    dataset_status,
    load_dataset,
    load_esconv,
    load_esconv_failed,
    load_esconv_strategies,
)
from emoscope.datasets.esconv import STRATEGIES, normalize_strategy
from emoscope.errors import DataError


def test_dev_turns(fixture_root: Path) -> None:
    turns = load_esconv("dev", fixture_root)
    assert [t.strategy for t in turns] == [
        "Others",
        "Question",
        "Self-disclosure",
        "Affirmation and Reassurance",
    ]
    first, third = turns[0], turns[2]
    assert first.reply == "Hello" and first.turn == 1 and first.line == 1
    assert [u.speaker for u in first.history] == ["seeker"]
    assert [u.speaker for u in third.history] == ["seeker", "supporter", "supporter", "seeker"]
    assert third.history[2].meta == {"strategy": "Question"}
    assert third.previous_strategy == "Question" and first.previous_strategy is None
    assert third.reply.startswith("I understand how hard")  # strategy prefix removed
    assert len(load_esconv("validation", fixture_root)) == 4


def test_test_split_and_lines(fixture_root: Path) -> None:
    turns = load_esconv("test", fixture_root)
    assert [t.line for t in turns] == [1, 2, 3]
    assert all(t.strategy in STRATEGIES for t in turns)


def test_strategy_names(fixture_root: Path) -> None:
    assert load_esconv_strategies(fixture_root) == STRATEGIES
    assert normalize_strategy("[Questions]") == "Question"
    assert normalize_strategy("other") == "Others"
    with pytest.raises(DatasetOptionError, match="unknown strategy 'Hugging'"):
        normalize_strategy("Hugging")


def test_failed(fixture_root: Path) -> None:
    (conv,) = load_esconv_failed(fixture_root)
    assert conv.emotion_type == "depression" and conv.problem_type == "ongoing depression"
    assert [u.speaker for u in conv.dialogue][:3] == ["seeker", "seeker", "supporter"]
    assert conv.dialogue[2].meta == {"strategy": "Others"}
    assert conv.survey["seeker"]["empathy"] == "1"


def test_bad_split_and_not_labelled(fixture_root: Path) -> None:
    with pytest.raises(DatasetOptionError, match="train split is not included"):
        load_esconv("train", fixture_root)
    with pytest.raises(DatasetOptionError, match="load_esconv"):
        load_dataset("esconv", "test", fixture_root)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1.0 0 0 Hi there", "the last segment is not a supporter reply"),
        ("1.0 0 0 Hi EOS 1.0 1 1 Hello", "supporter segment 2 has no [strategy] prefix"),
        ("1.0 0 0 Hi EOS 1.0 1 1 [Hugging] Hello", "unknown strategy 'Hugging'"),
        ("1.0 0 0 Hi EOS x 1 1 [Questions] Hello", "segment 2 is 'x 1 1"),
        ("1.0 0 0 Hi EOS 1.0 1 1 [Questions]", "the supporter reply is empty"),
    ],
)
def test_bad_lines(
    write: Callable[[str, str], Path], line: str, problem: str, tmp_path: Path
) -> None:
    good = "1.0 0 0 Hi EOS 1.0 1 1 [Questions] How are you?"
    path = write("esconv/test_with_strategy.tsv", f"{good}\n\n{line}\n")
    with pytest.raises(DataError, match="line 3: " + re.escape(problem)) as e:
        load_esconv("test", tmp_path)
    assert str(path) in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        turns = load_esconv("test", tmp_path, skip_bad=True)
    assert len(turns) == 1


def test_bad_failed_file(write: Callable[[str, str], Path], tmp_path: Path) -> None:
    write("esconv/failed_esconv.json", '[\n{"emotion_type": "anger"}\n]')
    with pytest.raises(DataError, match="line 2: item 0: problem_type is None"):
        load_esconv_failed(tmp_path)


def test_status_lists_esconv(fixture_root: Path) -> None:
    (row,) = [r for r in dataset_status(fixture_root) if r["name"] == "esconv"]
    assert row["present"] and row["splits"] == {"dev": 4, "test": 3}


def test_real_esconv(real_root: Callable[[str], Path]) -> None:
    root = real_root("esconv")
    assert len(load_esconv("dev", root)) == 2985
    assert len(load_esconv("test", root)) == 2775
    assert len(load_esconv_failed(root)) == 196
