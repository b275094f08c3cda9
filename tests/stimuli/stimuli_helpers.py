"""Shared by the stimuli tests: a scripted chat backend (also loaded by dotted path from the
CLI tests) and the EQ-Bench prompt of the fixtures."""

from __future__ import annotations

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
