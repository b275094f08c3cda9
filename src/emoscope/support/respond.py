"""The supporter's next turn: emoscope reads the seeker, an LLM writes the reply.

:class:`Supporter` joins the pieces of :mod:`emoscope.support` in the HEF arrangement (a small
emotion model guiding a large one; Yang et al., "Enhancing Empathetic Response Generation by
Augmenting LLMs with Small-scale Empathetic Models"): the seeker's emotion and VAD and their
cause words (emoscope's encoder), the strategy (the planner, one given, or the LLM's own choice
by label scoring as in Kang et al., ACL 2024), the target emotion (VAD rule or learned
transition), all put into the prompt of any :class:`~emoscope.llm.base.ChatBackend`. With
``plugin=False`` the LLM gets the conversation alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from emoscope.datasets.esconv import normalize_strategy
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.llm.base import ChatBackend
from emoscope.support.emotion import EmotionTransition, TargetEmotion, cause_words, target_emotion
from emoscope.support.llm_strategy import strategy_probs, strategy_scores
from emoscope.support.planner import StrategyPlanner
from emoscope.support.prompt import SupportPrompt
from emoscope.support.state import read_states

__all__ = ["REPLY_REPETITION_PENALTY", "SupportReply", "Supporter", "default_planner_path"]

#: The learned target-emotion transition, shipped beside the planner when it beat the VAD rule.
TRANSITION_FILE = "transition.json"
#: Repetition penalty of a local model's replies (``respond``, ``serve --respond-model``): chosen
#: on a 16-turn ESConv pilot with SmolLM2-135M-Instruct, where 1.0 looped in 6/16 plugin replies
#: and copied the prompt's headings in 15/16, and 1.3 drifted off topic (docs/support.md).
REPLY_REPETITION_PENALTY = 1.1


def default_planner_path() -> Path:
    """The planner shipped with emoscope (trained on ESConv dev)."""
    return Path(str(resources.files("emoscope").joinpath("data/support_planner")))


@dataclass(frozen=True)
class SupportReply:
    """What :meth:`Supporter.respond` returns (``to_dict`` is the CLI/HTTP JSON)."""

    reply: str
    strategy: str | None
    strategy_source: str
    seeker: str
    seeker_emotion: dict[str, Any]
    cause_words: list[str]
    target_emotion: TargetEmotion | None
    plugin: bool
    prompt: list[dict[str, str]]
    model: str
    usage: dict[str, int] = field(default_factory=dict)
    strategy_probs: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "reply": self.reply,
            "strategy": self.strategy,
            "strategy_source": self.strategy_source,
            "strategy_probs": self.strategy_probs,
            "plugin": self.plugin,
            "emotions": {
                "seeker": self.seeker,
                "seeker_emotion": self.seeker_emotion,
                "cause_words": self.cause_words,
                "target": None if self.target_emotion is None else self.target_emotion.to_dict(),
            },
            "prompt": self.prompt,
            "model": self.model,
            "usage": self.usage,
        }


class Supporter:
    """Write supporter turns with an LLM guided by emoscope.

    Args:
        backend: the LLM (any :class:`ChatBackend`).
        recognizer: emoscope's encoder (needs ``predict_with_features``); default: the shipped
            model.
        planner: a :class:`StrategyPlanner`, a folder, or ``None`` for the shipped planner.
        transition: a learned :class:`EmotionTransition`; ``"shipped"`` (default) the one shipped
            beside the planner, or the VAD rule when none ships; ``None`` the VAD rule.
        prompt: the prompt builder (default: ``data/prompts/support.toml``).
        max_new_tokens: reply length cap.
        n_cause_words: cause words to report.
    """

    def __init__(
        self,
        backend: ChatBackend,
        recognizer: Any = None,
        planner: StrategyPlanner | str | Path | None = None,
        transition: EmotionTransition | str | None = "shipped",
        prompt: SupportPrompt | None = None,
        *,
        max_new_tokens: int = 60,
        n_cause_words: int = 3,
    ) -> None:
        if recognizer is None:
            from emoscope.recognizers.encoder import EncoderRecognizer

            recognizer = EncoderRecognizer()
        if not hasattr(recognizer, "predict_with_features"):
            raise EmoscopeError("the supporter needs emoscope's encoder (predict_with_features)")
        self.backend = backend
        self.recognizer = recognizer
        self._planner = planner
        if transition == "shipped":
            path = default_planner_path() / TRANSITION_FILE
            transition = EmotionTransition.load(path) if path.is_file() else None
        if isinstance(transition, str):
            raise EmoscopeError("transition must be 'shipped', None or an EmotionTransition")
        self.transition: EmotionTransition | None = transition
        self.prompt = prompt or SupportPrompt()
        self.max_new_tokens = max_new_tokens
        self.n_cause_words = n_cause_words

    @property
    def planner(self) -> StrategyPlanner:
        """The strategy planner (loaded on first use)."""
        if not isinstance(self._planner, StrategyPlanner):
            self._planner = StrategyPlanner.load(self._planner or default_planner_path())
        return self._planner

    def respond(
        self,
        dialogue: Dialogue,
        *,
        strategy: str = "auto",
        plugin: bool = True,
        seeker: str | None = None,
        temperature: float = 0.0,
    ) -> SupportReply:
        """The supporter's next turn after ``dialogue``.

        ``strategy``: ``auto`` (the planner's choice), ``llm`` (the LLM's own choice by label
        scoring, :mod:`emoscope.support.llm_strategy`; needs a backend that scores) or a
        strategy name (ESConv's eight; ``Questions``/``Other`` spellings accepted). Without the
        plugin no strategy is given to the LLM unless one is named or ``llm`` is asked.

        Raises:
            EmoscopeError: no seeker turn, an unknown strategy name, ``llm`` with a backend
                that cannot score.
        """
        (out,) = self.respond_many(
            [dialogue], strategy=strategy, plugin=plugin, seeker=seeker, temperature=temperature
        )
        return out

    def respond_many(
        self,
        dialogues: Sequence[Dialogue],
        *,
        strategy: str | Sequence[str] = "auto",
        plugin: bool = True,
        seeker: str | None = None,
        temperature: float = 0.0,
    ) -> list[SupportReply]:
        """:meth:`respond` for several dialogues, their replies generated in one batched call.

        ``strategy`` is one setting for all dialogues or one per dialogue.
        """
        strategies = [strategy] * len(dialogues) if isinstance(strategy, str) else list(strategy)
        if len(strategies) != len(dialogues):
            raise EmoscopeError(
                f"{len(strategies)} strategies given for {len(dialogues)} dialogues"
            )
        drafts = [
            self._draft(d, s, plugin, seeker) for d, s in zip(dialogues, strategies, strict=True)
        ]
        gens = self.backend.generate(
            [d.prompt for d in drafts], max_new_tokens=self.max_new_tokens, temperature=temperature
        )
        return [
            replace(
                d,
                reply=g.text.strip(),
                usage={"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens},
            )
            for d, g in zip(drafts, gens, strict=True)
        ]

    def _draft(
        self, dialogue: Dialogue, strategy: str, plugin: bool, seeker: str | None
    ) -> SupportReply:
        """Everything of the reply but its text: emoscope's reading, the strategy, the prompt."""
        named = None if strategy in ("auto", "llm") else normalize_strategy(strategy)
        (state,) = read_states(self.recognizer, dialogue, seeker=seeker)
        probs: dict[str, float] | None = None
        if named is not None:
            chosen, source = named, "given"
        elif strategy == "llm":
            probs = strategy_probs(
                strategy_scores(self.backend, dialogue, state.seeker, self.prompt)
            )
            chosen, source = max(probs, key=probs.__getitem__), "llm"
        elif plugin:
            p = self.planner.predict_proba(state.features[None])[0]
            probs = {s: float(x) for s, x in zip(self.planner.classes_, p, strict=True)}
            chosen, source = max(probs, key=probs.__getitem__), "planner"
        else:
            chosen, source = None, "none"
        causes: list[str] = []
        target: TargetEmotion | None = None
        if plugin:
            causes = cause_words(
                self.recognizer, state.seeker_text, state.emotion, self.n_cause_words
            )
            target = target_emotion(state.emotion, self.transition)
            messages = self.prompt.messages(
                dialogue,
                state.seeker,
                strategy=chosen,
                emotion=state.emotion,
                causes=causes,
                target=target,
            )
        else:
            messages = self.prompt.messages(dialogue, state.seeker, plugin=False, strategy=chosen)
        return SupportReply(
            reply="",
            strategy=chosen,
            strategy_source=source,
            seeker=state.seeker,
            seeker_emotion={"text": state.seeker_text, **state.emotion.to_dict()},
            cause_words=causes,
            target_emotion=target,
            plugin=plugin,
            prompt=messages,
            model=self.backend.model,
            strategy_probs=probs,
        )
