"""Tests of emoscope.stimuli.eqbench: EQ-Bench v2 parsing and official scoring."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from stimuli_helpers import SHARED, ScriptedBackend, eqbench_prompt_text

from emoscope.stimuli import (
    eqbench_benchmark_score,
    eqbench_prompt,
    eqbench_question_score,
    eqbench_question_score_v1,
    parse_eqbench_answer,
    run_eqbench,
)

# --------------------------------------------------------------------------------------------
# EQ-Bench v2

REF = {"Remorseful": 2.0, "Indifferent": 3.0, "Affectionate": 0.0, "Annoyed": 5.0}


def test_eqbench_v2_question_scores_hand_computed() -> None:
    assert (
        eqbench_question_score(
            REF, {"Remorseful": "2", "Indifferent": "3", "Affectionate": "0", "Annoyed": "5"}
        )
        == 10.0
    )
    # One emotion off by 1: cost 6.5 / (1 + e^{-1.2 * (1 - 4)}) = 6.5 / (1 + e^{3.6}) = 0.172875...
    cost1 = 6.5 / (1 + math.exp(3.6))
    got = eqbench_question_score(
        REF, {"remorseful": 3, "INDIFFERENT": 3, "Affectionate": 0, "Annoyed": 5}
    )
    assert got == pytest.approx(10 - 0.7477 * cost1) and got == pytest.approx(9.870737, abs=1e-6)
    # Off by 7 (> 5) costs 7; off by 5 costs 6.5 / (1 + e^{-1.2}) = 6.5 / 1.301194 = 4.995413
    cost5 = 6.5 / (1 + math.exp(-1.2))
    got = eqbench_question_score(
        REF, {"Remorseful": 9, "Indifferent": 8, "Affectionate": 0, "Annoyed": 5}
    )
    assert got == pytest.approx(10 - 0.7477 * (7 + cost5))
    assert got == pytest.approx(10 - 0.7477 * 11.995413, abs=1e-5)
    # Not four pairs, or not the four reference emotions: the question does not count.
    assert eqbench_question_score(REF, {"Remorseful": 2, "Indifferent": 3, "Annoyed": 5}) is None
    assert (
        eqbench_question_score(REF, {"Remorseful": 2, "Indifferent": 3, "Happy": 0, "Annoyed": 5})
        is None
    )


def test_eqbench_v1_normalises() -> None:
    # Answers doubled: rescaled to sum to 10 they equal the reference, score 10.
    assert eqbench_question_score_v1(
        REF, {"Remorseful": 4, "Indifferent": 6, "Affectionate": 0, "Annoyed": 10}
    ) == pytest.approx(10.0)
    # (5, 5, 0, 0) -> rescaled (5, 5, 0, 0): 10 - (3 + 2 + 0 + 5) = 0
    assert eqbench_question_score_v1(
        REF, {"Remorseful": 5, "Indifferent": 5, "Affectionate": 0, "Annoyed": 0}
    ) == pytest.approx(0.0)
    assert (
        eqbench_question_score_v1(
            REF, {"Remorseful": 0, "Indifferent": 0, "Affectionate": 0, "Annoyed": 0}
        )
        is None
    )


def test_eqbench_parse_and_benchmark_score() -> None:
    text = "**Remorseful**: 2\nIndifferent: 3\n# Affectionate: 0\nAnnoyed: 5"
    first, rev = parse_eqbench_answer(text)
    assert first == {"Remorseful": "2", "Indifferent": "3", "Affectionate": "0", "Annoyed": "5"}
    assert rev == {}
    revised_text = (
        "First pass scores:\nRemorseful: 1\nIndifferent: 1\nAffectionate: 1\nAnnoyed: 1\n"
        "Critique: too flat\nRevised scores:\nRemorseful: 2\nIndifferent: 3\nAffectionate: 0\n"
        "Annoyed: 5\n"
    )
    first, rev = parse_eqbench_answer(revised_text, revise=True)
    assert first["Annoyed"] == "1" and rev["Annoyed"] == "5"
    res = eqbench_benchmark_score([10.0, 5.0, None])
    assert res["score"] == pytest.approx(75.0) and res["parseable"] == 2 and res["n_questions"] == 3
    # Revised pass used when at least as good and parsed at least 95% as often.
    both = eqbench_benchmark_score([5.0, 5.0], [6.0, 6.0])
    assert both["used"] == "revised" and both["score"] == pytest.approx(60.0)
    fewer = eqbench_benchmark_score([5.0] * 20, [9.0] * 18 + [None, None])
    assert fewer["used"] == "first_pass" and fewer["score"] == pytest.approx(50.0)
    assert eqbench_benchmark_score([None])["score"] is None  # nothing parsed: no score


def test_eqbench_prompt_removes_revision_instructions() -> None:
    p = eqbench_prompt(eqbench_prompt_text())
    assert "critique" not in p.lower() and "Revised scores" not in p and "First pass" not in p
    assert "Remorseful: <score>" in p and p.endswith("\nYour answer:\n")
    assert "[End of answer]" in p
    assert eqbench_prompt(eqbench_prompt_text(), revise=True) == eqbench_prompt_text()


def test_run_eqbench_official_score(bench_root: Path) -> None:
    answers = iter(
        [
            "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7",  # perfect: 10
            "Remorseful: 1\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7",  # off by 1
            "I cannot say.",  # unparsable: not counted
        ]
    )
    backend = ScriptedBackend(lambda _c: next(answers))
    res = run_eqbench(backend, root=bench_root, batch_size=2)
    q2 = 10 - 0.7477 * 6.5 / (1 + math.exp(3.6))
    assert res["question_scores"] == [10.0, pytest.approx(q2), None]
    assert res["score"] == pytest.approx(100 * (10 + q2) / 2 / 10)
    assert res["parseable"] == 2 and res["version"] == "v2"
    assert backend.options[0]["max_new_tokens"] == 60
    assert backend.seen[0][0]["content"].endswith("Your answer:\n")


@pytest.mark.skipif(not (SHARED / "eqbench").is_dir(), reason="EQ-Bench data not present")
def test_eqbench_real_questions_reference_answers_score_100() -> None:
    from emoscope.datasets import load_eqbench

    items = {it.prompt: it for it in load_eqbench(SHARED)}
    by_prompt = {eqbench_prompt(p): it for p, it in items.items()}

    def answer(conv: list[dict[str, str]]) -> str:
        it = by_prompt[conv[-1]["content"]]
        ref = it.reference_fullscale or it.reference
        return "\n".join(f"{k}: {int(v)}" for k, v in ref.items())

    res = run_eqbench(ScriptedBackend(answer), root=SHARED, limit=20)
    assert res["parseable"] == 20 and res["score"] == pytest.approx(100.0)


def test_constant_answer_floor_is_the_v2_score_of_all_fives() -> None:
    from types import SimpleNamespace

    from emoscope.stimuli.eqbench import eqbench_constant_score

    item = SimpleNamespace(reference_fullscale=REF, reference=None)
    one = eqbench_question_score(REF, {k: 5 for k in REF})
    assert one is not None and one < 10
    assert eqbench_constant_score([item, item]) == pytest.approx(10 * one)
    # Answering each reference exactly is 100; a constant far from them scores lower than 5s.
    assert eqbench_constant_score([item], value=10.0) < eqbench_constant_score([item])


def test_a_pass_with_no_parsed_answer_has_no_score() -> None:
    res = eqbench_benchmark_score([None, None])
    assert res["score"] is None and res["parseable"] == 0
    # A revised pass that parses is used over a first pass that parsed nothing.
    res = eqbench_benchmark_score([None, None], [8.0, None])
    assert res["used"] == "revised" and res["score"] == pytest.approx(80.0)
