"""The LLM's own choice of support strategy, by label scoring over ESConv's eight.

Kang et al. ("Can Large Language Models be Good Emotional Supporter? Mitigating Preference Bias
on Emotional Support Conversation", ACL 2024) ask an LLM which strategy comes next and find it
over-uses a few (preference bias). Here the choice is read without parsing free text: each
strategy name is scored by its log-likelihood as the answer to the question of
``data/prompts/support.toml`` (``[user] strategy``; :func:`emoscope.llm.scoring.score_choices`),
and the most likely one is the LLM's choice. The raw likelihoods are kept uncalibrated on
purpose: the model's priors over the strategy names are the preference being measured.

:func:`preference` measures that preference as Kang et al. describe it: a Bradley-Terry strength
per strategy, fitted to the off-diagonal cells of the confusion matrix (choosing strategy *i*
where the human supporter used *j* counts as *i* beating *j*), with the bias the standard
deviation of the strengths (0 when no strategy is favoured). The fit here is Hunter's (2004)
MM algorithm with a small pseudo-count on every pair, so a strategy that never loses (a model
that always picks it) gets a large finite strength instead of an infinite one; the strengths
are normalised to sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emoscope.datasets.esconv import STRATEGIES
from emoscope.dialogue import Dialogue
from emoscope.errors import EmoscopeError
from emoscope.llm.base import can_score
from emoscope.llm.scoring import softmax
from emoscope.support.prompt import SupportPrompt

__all__ = ["preference", "strategy_probs", "strategy_scores"]


def strategy_scores(
    backend: Any, dialogue: Dialogue, seeker: str, prompt: SupportPrompt | None = None
) -> dict[str, float]:
    """Log-likelihood of each ESConv strategy name as the LLM's answer for the next turn.

    ``backend`` must score choices (``score(conversations, choices)``, as the hf backend does).
    Returns ``{strategy: log-likelihood}`` in :data:`STRATEGIES` order.

    Raises:
        EmoscopeError: the backend cannot score choices (an OpenAI-protocol server).
    """
    if not can_score(backend):
        raise EmoscopeError(
            f"strategy 'llm' needs label scoring, which the {getattr(backend, 'name', '?')} "
            "backend does not offer; use --backend hf, or --strategy auto or a strategy name"
        )
    messages = (prompt or SupportPrompt()).strategy_messages(dialogue, seeker)
    (scores,) = backend.score([messages], list(STRATEGIES))
    return {s: float(x) for s, x in zip(STRATEGIES, scores, strict=True)}


def strategy_probs(scores: dict[str, float]) -> dict[str, float]:
    """The scores renormalised over the eight strategies."""
    p = softmax(np.array([scores[s] for s in STRATEGIES]))
    return {s: float(x) for s, x in zip(STRATEGIES, p, strict=True)}


def preference(
    chosen: Sequence[str],
    gold: Sequence[str],
    labels: Sequence[str] = STRATEGIES,
    *,
    pseudo_count: float = 0.1,
    iterations: int = 1000,
) -> dict[str, Any]:
    """Bradley-Terry preference of each strategy from (chosen, gold) pairs, and its bias.

    Returns ``{"preference": {label: strength}, "bias": std of the strengths}`` (strengths sum
    to 1; uniform strengths, i.e. no preference, give bias 0).

    Raises:
        EmoscopeError: lists of different lengths, or a label outside ``labels``.
    """
    if len(chosen) != len(gold):
        raise EmoscopeError(f"{len(chosen)} choices for {len(gold)} gold strategies")
    idx = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({x for x in (*chosen, *gold) if x not in idx})
    if unknown:
        raise EmoscopeError(f"unknown strategies {unknown}; expected: {', '.join(labels)}")
    k = len(labels)
    wins = np.full((k, k), pseudo_count)
    np.fill_diagonal(wins, 0.0)
    for c, g in zip(chosen, gold, strict=True):
        if c != g:
            wins[idx[c], idx[g]] += 1.0
    games = wins + wins.T
    p = np.full(k, 1.0 / k)
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins.sum(axis=1) / denom
        new /= new.sum()
        if np.abs(new - p).max() < 1e-12:
            p = new
            break
        p = new
    return {
        "preference": {lab: float(x) for lab, x in zip(labels, p, strict=True)},
        "bias": float(p.std()),
    }
