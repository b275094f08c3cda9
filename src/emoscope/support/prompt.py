"""The prompt of `emoscope respond`, built from the data file ``data/prompts/support.toml``.

HEF-style (Yang et al., "Enhancing Empathetic Response Generation by Augmenting LLMs with
Small-scale Empathetic Models"): with the plugin the system message carries emoscope's reading
of the seeker — the emotion label and VAD, the cause words — the chosen ESConv strategy with its
definition and the target emotion of the reply; without it (``plugin=False``) the same task
with none of these, for the A/B comparison. The user message holds the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from emoscope.datasets.esconv import STRATEGIES
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.llm.prompting import PromptTemplate, read_toml_tables
from emoscope.prediction import EmotionPrediction
from emoscope.support.emotion import TargetEmotion

__all__ = ["SupportPrompt", "load_support_template"]

_REQUIRED = {
    "system": ("plain", "plugin", "strategy_only"),
    "user": ("reply", "strategy"),
    "strategies": STRATEGIES,
}


def load_support_template(path: str | Path | None = None) -> PromptTemplate:
    """The built-in ``support`` template, or a TOML file with the same tables."""
    if path is None:
        text, source = (
            resources.files("emoscope").joinpath("data/prompts/support.toml").read_text("utf-8"),
            "support.toml",
        )
    else:
        p = Path(path)
        if not p.is_file():
            raise EmoscopeError(f"{p}: no such prompt template file")
        text, source = p.read_text("utf-8"), str(p)
    return PromptTemplate("support", source, read_toml_tables(text, source, _REQUIRED))


class SupportPrompt:
    """Chat messages for the supporter's next turn and for the LLM's own strategy choice."""

    def __init__(self, template: PromptTemplate | None = None) -> None:
        self.template = template or load_support_template()

    @staticmethod
    def dialogue_lines(dialogue: Dialogue, seeker: str) -> str:
        """The conversation as ``Seeker: ...`` / ``Supporter: ...`` lines."""
        return "\n".join(
            f"{'Seeker' if u.speaker == seeker else 'Supporter'}: {u.text}" for u in dialogue
        )

    def messages(
        self,
        dialogue: Dialogue,
        seeker: str,
        *,
        plugin: bool = True,
        strategy: str | None = None,
        emotion: EmotionPrediction | None = None,
        causes: Sequence[str] = (),
        target: TargetEmotion | None = None,
    ) -> list[dict[str, str]]:
        """System + user messages; with ``plugin`` the strategy, emotion and target are needed."""
        t = self.template
        if plugin:
            if strategy is None or emotion is None or target is None:
                raise EmoscopeError("the plugin prompt needs a strategy, an emotion and a target")
            vad = emotion.vad or (0.0, 0.0, 0.0)
            system = t.render(
                "system",
                "plugin",
                seeker_emotion=emotion.label,
                valence=f"{vad[0]:+.2f}",
                arousal=f"{vad[1]:+.2f}",
                cause_words=", ".join(f'"{w}"' for w in causes) or "(none found)",
                strategy=strategy,
                strategy_definition=t.text("strategies", strategy),
                target_emotion=target.label,
            )
        else:
            system = t.text("system", "plain")
            if strategy is not None:
                system += "\n" + t.render(
                    "system",
                    "strategy_only",
                    strategy=strategy,
                    strategy_definition=t.text("strategies", strategy),
                )
        user = t.render("user", "reply", dialogue=self.dialogue_lines(dialogue, seeker))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def strategy_messages(self, dialogue: Dialogue, seeker: str) -> list[dict[str, str]]:
        """The question whose answer the LLM's strategy is scored on (label scoring)."""
        t = self.template
        user = t.render(
            "user",
            "strategy",
            dialogue=self.dialogue_lines(dialogue, seeker),
            strategies=", ".join(STRATEGIES),
        )
        return [
            {"role": "system", "content": t.text("system", "plain")},
            {"role": "user", "content": user},
        ]

    def to_dict(self) -> dict[str, Any]:
        """Where the template came from (for result files)."""
        return {"template": self.template.source, "fingerprint": self.template.fingerprint()}
