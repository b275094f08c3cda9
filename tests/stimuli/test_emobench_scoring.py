"""Tests of emoscope.stimuli.emobench: EmoBench prompts, parsing and official scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stimuli_helpers import SHARED, ScriptedBackend

from emoscope.datasets.emobench import EmoBenchItem
from emoscope.stimuli import (
    emobench_messages,
    load_stimuli,
    parse_emobench_answer,
    run_emobench,
    score_emobench,
)

# --------------------------------------------------------------------------------------------
# EmoBench


def _eu_item(cat: str = "complex") -> EmoBenchItem:
    return EmoBenchItem(
        "1", "en", "EU", cat, "x", "Scenario.", "Ann", ("Joy", "Anger"), "Joy",
        ("Gift", "Rain", "Noise"), "Rain",
    )  # fmt: skip


def test_emobench_parse_and_official_scoring() -> None:
    fenced = '```json\n{"answer_q1": "a", "answer_q2": "B) Rain"}\n```'
    assert parse_emobench_answer(fenced, "EU") == {"answer_q1": "A", "answer_q2": "B"}
    assert parse_emobench_answer('"answer_q1": "A", "answer_q2": "C"', "EU") == {
        "answer_q1": "A",
        "answer_q2": "C",
    }
    assert parse_emobench_answer('{"answer": "C"}', "EA") == {"answer": "C"}
    assert parse_emobench_answer("no idea", "EA") is None
    assert parse_emobench_answer('{"answer_q1": "A"}', "EU") is None
    items = [_eu_item("complex"), _eu_item("complex"), _eu_item("personal")]
    outs = [
        '{"answer_q1": "A", "answer_q2": "B"}',  # both right
        '{"answer_q1": "A", "answer_q2": "C"}',  # emotion right, cause wrong: wrong
        "garbage",
    ]
    res = score_emobench(items, outs)
    assert res["accuracy"] == {"complex": 0.5, "personal": 0.0, "Overall": pytest.approx(1 / 3)}
    assert res["n"] == {"complex": 2, "personal": 1, "Overall": 3} and res["unparsed"] == 1
    msgs = emobench_messages(_eu_item(), load_stimuli("NP03")[0])
    assert msgs[0]["role"] == "system" and "answer_q1" in msgs[0]["content"]
    assert "A) Joy" in msgs[1]["content"] and "C) Noise" in msgs[1]["content"]
    assert msgs[1]["content"].endswith("It's clear you're out of your depth here.")


def test_run_emobench_on_files(bench_root: Path) -> None:
    backend = ScriptedBackend(
        lambda c: (
            '{"answer_q1": "A", "answer_q2": "B"}'
            if "Scenario 1" in c[-1]["content"]
            else '{"answer_q1": "B", "answer_q2": "B"}'
        )
    )
    res = run_emobench(backend, "EU", root=bench_root)
    assert res["accuracy"]["complex"] == 0.5 and res["accuracy"]["Overall"] == pytest.approx(1 / 3)
    ea = run_emobench(ScriptedBackend(lambda _c: '{"answer": "B"}'), "ea", root=bench_root)
    assert ea["accuracy"] == {"Personal-Others": 1.0, "Overall": 1.0}


@pytest.mark.skipif(not (SHARED / "emobench").is_dir(), reason="EmoBench data not present")
def test_emobench_real_data_oracle_scores_one() -> None:
    from emoscope.datasets import load_emobench

    items = load_emobench("EU", SHARED)[:12]
    outs = [
        json.dumps(
            {
                "answer_q1": "ABCDEF"[it.emotion_choices.index(it.emotion_label)],
                "answer_q2": "ABCDEF"[it.cause_choices.index(it.cause_label)],
            }
        )
        for it in items
    ]
    assert score_emobench(items, outs)["accuracy"]["Overall"] == 1.0
