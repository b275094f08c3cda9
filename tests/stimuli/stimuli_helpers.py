"""Shared by the stimuli tests: a scripted chat backend (also loaded by dotted path from the
CLI tests) and the EQ-Bench prompt of the fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emoscope.llm.base import Generation

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


class ScriptedBackend:
    """A chat backend answering with a function of the conversation (for harness logic)."""

    name = "scripted"
    model = "scripted"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[list[dict[str, str]]] = []
        self.options: list[dict[str, Any]] = []

    def generate(
        self, conversations: Any, *, max_new_tokens: int = 64, temperature: float = 0.0
    ) -> list[Generation]:
        self.options.append({"max_new_tokens": max_new_tokens, "temperature": temperature})
        self.seen += [list(c) for c in conversations]
        return [Generation(self.answer(c)) for c in conversations]


def make_scripted(model: str | None = None) -> ScriptedBackend:
    """Factory for the CLI: answers sentiment items right only when EP02 is in the prompt."""

    def answer(conv: list[dict[str, str]]) -> str:
        text = conv[-1]["content"]
        if "important to my career" in text:
            return (
                "positive" if any(w in text for w in ("best", "great", "wonderful")) else "negative"
            )
        return "positive"

    return ScriptedBackend(answer)


def eqbench_prompt_text() -> str:
    return (
        "\nYour task is to predict the likely emotional responses of a character in this "
        "dialogue:\n\nA: hi\nB: bye\n[End dialogue]\n\nAt the end of this dialogue, A would "
        "feel...\nRemorseful\nIndifferent\nAffectionate\nAnnoyed\n\nGive each of these possible "
        "emotions a score from 0-10 for the relative intensity that they are likely to be "
        "feeling each. Then critique your answer by thinking it through step by step. Finally, "
        "give your revised scores.\n\nYou must output in the following format, including "
        "headings (of course, you should give your own scores), with no additional "
        "commentary:\n\nFirst pass scores:\nRemorseful: <score>\nIndifferent: <score>\n"
        "Affectionate: <score>\nAnnoyed: <score>\n\nCritique: <your critique here>\n\n"
        "Revised scores:\nRemorseful: <revised score>\nIndifferent: <revised score>\n"
        "Affectionate: <revised score>\nAnnoyed: <revised score>\n\n[End of answer]\n\n"
        "Remember: zero is a valid score, meaning they are likely not feeling that emotion. You "
        "must score at least one emotion > 0.\n"
    )


def write_bench_files(root: Path) -> Path:
    """Small EQ-Bench and EmoBench files in the real formats, written under ``root``."""
    (root / "eqbench").mkdir()
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
    (root / "eqbench" / "eq_bench_v2_questions_171.json").write_text(json.dumps(questions))
    (root / "emobench").mkdir()
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
    (root / "emobench" / "EU.jsonl").write_text("\n".join(json.dumps(r) for r in eu) + "\n")
    (root / "emobench" / "EA.jsonl").write_text("\n".join(json.dumps(r) for r in ea) + "\n")
    return root
