"""The Bradley-Terry strategy preference and its bias (emoscope.support.llm_strategy)."""

from __future__ import annotations

import random

import pytest

from emoscope.datasets.esconv import STRATEGIES
from emoscope.errors import EmoscopeError
from emoscope.support.llm_strategy import preference, strategy_probs


def _gold(n: int = 400) -> list[str]:
    r = random.Random(0)
    return [r.choice(STRATEGIES) for _ in range(n)]


def test_no_preference_when_every_choice_is_right() -> None:
    gold = _gold()
    out = preference(gold, gold)
    assert out["bias"] == pytest.approx(0.0, abs=1e-12)
    assert sum(out["preference"].values()) == pytest.approx(1.0)


def test_a_favoured_strategy_gets_the_largest_strength() -> None:
    gold = _gold()
    r = random.Random(1)
    uniform = preference([r.choice(STRATEGIES) for _ in gold], gold)
    skewed = [g if r.random() < 0.3 else "Providing Suggestions" for g in gold]
    out = preference(skewed, gold)
    strengths = out["preference"]
    assert max(strengths, key=strengths.__getitem__) == "Providing Suggestions"
    assert out["bias"] > 3 * uniform["bias"]
    always = preference(["Question"] * len(gold), gold)
    assert always["bias"] > out["bias"]  # finite thanks to the pseudo-count
    assert always["preference"]["Question"] > 0.9


def test_bad_input_is_refused() -> None:
    with pytest.raises(EmoscopeError, match="2 choices for 1"):
        preference(["Question", "Others"], ["Question"])
    with pytest.raises(EmoscopeError, match="unknown strategies"):
        preference(["Questions"], ["Question"])


def test_strategy_probs_renormalise_log_likelihoods() -> None:
    scores = {s: -float(i) for i, s in enumerate(STRATEGIES)}
    p = strategy_probs(scores)
    assert list(p) == list(STRATEGIES)
    assert sum(p.values()) == pytest.approx(1.0)
    assert max(p, key=p.__getitem__) == STRATEGIES[0]
