"""Fixtures of the stimuli tests: small EQ-Bench and EmoBench files in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stimuli_helpers import eqbench_prompt_text


@pytest.fixture
def bench_root(tmp_path: Path) -> Path:
    """Small EQ-Bench and EmoBench files in the real formats."""
    (tmp_path / "eqbench").mkdir()
    questions = {
        str(i): {
            "prompt": eqbench_prompt_text(),
            "reference_answer": {"emotion1": "Remorseful", "emotion2": "Indifferent",
                                 "emotion3": "Affectionate", "emotion4": "Annoyed",
                                 "emotion1_score": 2, "emotion2_score": 3, "emotion3_score": 0,
                                 "emotion4_score": 5},
            "reference_answer_fullscale": {"emotion1": "Remorseful", "emotion2": "Indifferent",
                                           "emotion3": "Affectionate", "emotion4": "Annoyed",
                                           "emotion1_score": 0, "emotion2_score": "6",
                                           "emotion3_score": 0, "emotion4_score": "7"},
        }
        for i in (1, 2, 3)
    }  # fmt: skip
    (tmp_path / "eqbench" / "eq_bench_v2_questions_171.json").write_text(json.dumps(questions))
    (tmp_path / "emobench").mkdir()
    eu = [
        {"qid": str(i), "language": "en", "coarse_category": cat, "finegrained_category": "x",
         "scenario": f"Scenario {i}.", "subject": "Ann", "emotion_choices": ["Joy", "Anger"],
         "emotion_label": "Joy", "cause_choices": ["Gift", "Rain", "Noise"], "cause_label": "Rain"}
        for i, cat in enumerate(["complex", "complex", "personal"], start=1)
    ]  # fmt: skip
    ea = [
        {"qid": "1", "language": "en", "category": "Personal-Others", "question type": "Action",
         "scenario": "S.", "subject": "Bo", "choices": ["Wait", "Talk", "Leave"], "label": "Talk"}
    ]  # fmt: skip
    (tmp_path / "emobench" / "EU.jsonl").write_text("\n".join(json.dumps(r) for r in eu) + "\n")
    (tmp_path / "emobench" / "EA.jsonl").write_text("\n".join(json.dumps(r) for r in ea) + "\n")
    return tmp_path
