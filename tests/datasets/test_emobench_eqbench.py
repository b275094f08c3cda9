"""EmoBench and EQ-Bench loaders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import DatasetOptionError, load_dataset, load_emobench, load_eqbench
from emoscope.errors import DataError

EA_ROW = {
    "qid": "7",
    "language": "en",
    "category": "Social-Self",
    "question type": "Response",
    "scenario": "Someone cuts in line.",
    "subject": "I",
    "choices": ["Say nothing", "Politely point to the queue"],
    "label": "Politely point to the queue",
}


def test_emobench_eu(fixture_root: Path) -> None:
    items = load_emobench("EU", fixture_root)
    assert [it.id for it in items] == ["EU-en-1", "EU-en-2"]
    first = items[0]
    assert first.category == "complex_emotions" and first.subcategory == "emotion_transition"
    assert first.emotion_label == "Delight" and "Delight" in first.emotion_choices
    assert first.cause_label in first.cause_choices and first.choices == ()
    assert items[1].scenario.endswith("letter.")  # stripped
    assert len(load_emobench("eu", fixture_root, language=None)) == 3
    assert [it.language for it in load_emobench("EU", fixture_root, language="zh")] == ["zh"]


def test_emobench_ea(fixture_root: Path) -> None:
    (item,) = load_emobench("EA", fixture_root)
    assert item.subcategory == "Action" and item.label == "Ask her calmly what is going on"
    assert item.emotion_choices == () and item.label in item.choices


def test_emobench_options(fixture_root: Path) -> None:
    with pytest.raises(DatasetOptionError, match="EU or EA"):
        load_emobench("XX", fixture_root)
    with pytest.raises(DatasetOptionError, match="language"):
        load_emobench("EU", fixture_root, language="fr")
    with pytest.raises(DatasetOptionError, match="load_emobench"):
        load_dataset("emobench", "test", fixture_root)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"label": "Shout"}, "label 'Shout' is not among the choices"),
        ({"choices": "Say nothing"}, "choices is 'Say nothing'"),
        ({"scenario": ""}, "scenario is ''"),
        ({"subject": None}, "subject is None"),
    ],
)
def test_emobench_malformed(
    write: Callable[[str, str | bytes], Path], change: dict[str, object], problem: str
) -> None:
    bad = {**EA_ROW, **change}
    text = json.dumps(EA_ROW) + "\n" + json.dumps(bad) + "\n"
    root = write("root/emobench/EA.jsonl", text).parents[1]
    with pytest.raises(DataError, match=r"EA.jsonl, line 2: ") as info:
        load_emobench("EA", root)
    assert problem in str(info.value) and "one JSON object per line" in str(info.value)


def test_emobench_invalid_json(write: Callable[[str, str | bytes], Path]) -> None:
    root = write("root/emobench/EA.jsonl", json.dumps(EA_ROW) + "\n\n{oops\n").parents[1]
    with pytest.raises(DataError, match=r"EA.jsonl, line 3: invalid JSON"):
        load_emobench("EA", root)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(load_emobench("EA", root, skip_bad=True)) == 1


def test_eqbench(fixture_root: Path) -> None:
    items = load_eqbench(fixture_root)
    assert [it.id for it in items] == ["1", "2", "10"]
    one, two, ten = items
    assert two.emotions == ("Hopeful", "Angry", "Relieved", "Embarrassed")
    assert two.reference == {"Hopeful": 5, "Angry": 0, "Relieved": 4, "Embarrassed": 1}
    assert two.reference_fullscale == {"Hopeful": 7, "Angry": 0, "Relieved": 6, "Embarrassed": 2}
    assert two.dialogue == "Maya: You came back.\nSam: I never really left."
    assert two.character == "Maya" and ten.character == "Kim"
    assert ten.reference_fullscale is None
    assert one.dialogue is None and one.character is None
    assert two.line is not None and two.line == 2


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ({"emotion1": "A", "emotion1_score": 11}, "emotion1_score is 11"),
        ({"emotion1": "A", "emotion1_score": "lots"}, "emotion1_score is 'lots'"),
        ({"emotion1_score": 1}, "emotion1 is None"),
    ],
)
def test_eqbench_malformed(
    write: Callable[[str, str | bytes], Path], ref: dict[str, object], problem: str
) -> None:
    full = {"emotion1": "A", "emotion2": "B", "emotion3": "C", "emotion4": "D"}
    full.update({f"emotion{i}_score": 1 for i in range(1, 5)})  # type: ignore[misc]
    bad = {k: v for k, v in full.items() if k != "emotion1"} | ref
    data = {
        "1": {"prompt": "p", "reference_answer": full},
        "2": {"prompt": "p", "reference_answer": bad},
    }
    text = json.dumps(data, indent=1)
    root = write("root/eqbench/eq_bench_v2_questions_171.json", text).parents[1]
    with pytest.raises(DataError) as info:
        load_eqbench(root)
    assert problem in str(info.value) and "question '2'" in str(info.value)
    assert info.value.line == text.splitlines().index(' "2": {') + 1


def test_eqbench_invalid_json(write: Callable[[str, str | bytes], Path]) -> None:
    root = write(
        "root/eqbench/eq_bench_v2_questions_171.json", '{\n "1": {\n "prompt": }\n}'
    ).parents[1]
    with pytest.raises(DataError, match=r"line 3: invalid JSON"):
        load_eqbench(root)
