"""Support: seeker detection, support states, the strategy planner, target emotion, prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscope.datasets.esconv import STRATEGIES
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.prediction import EmotionPrediction
from emoscope.support import (
    EmotionTransition,
    StrategyPlanner,
    SupportPrompt,
    cause_words,
    find_seeker,
    load_support_template,
    read_states,
    target_emotion,
)
from emoscope.support.emotion import PALETTE, nearest_label


def _dialogue() -> Dialogue:
    return Dialogue(
        [
            Utterance("Hi, can we talk?", "seeker"),
            Utterance(
                "Of course. What is on your mind?", "supporter", meta={"strategy": "Question"}
            ),
            Utterance("I lost my job today and I feel terrible.", "seeker"),
        ]
    )


def test_find_seeker() -> None:
    assert find_seeker(_dialogue()) == "seeker"
    named = Dialogue([Utterance("I got the job!", "Maya"), Utterance("Wow", "Sam")])
    assert find_seeker(named) == "Sam"  # the last speaker is the one the reply answers
    assert find_seeker(named, "Maya") == "Maya"
    with pytest.raises(EmoscopeError, match="no turn by the seeker 'Lee'"):
        find_seeker(named, "Lee")
    with pytest.raises(EmoscopeError, match="no seeker turn"):
        find_seeker(Dialogue([Utterance("Hello", "supporter")]))
    with pytest.raises(EmoscopeError, match="no seeker turn"):
        find_seeker(Dialogue([]))


class _Stub:
    """A recogniser whose emotion depends on words, with features = position one-hot."""

    def predict(self, inputs: list[object]) -> list[EmotionPrediction]:
        out = []
        for x in inputs:
            texts = [u.text for u in x] if isinstance(x, Dialogue) else [str(x)]
            for t in texts:
                sad = 0.9 if "terrible" in t else 0.1
                out.append(
                    EmotionPrediction(
                        {"neutral": 1 - sad, "sadness": sad}, "meld", vad=(0.5 - sad, 0.0, 0.0)
                    )
                )
        return out

    def predict_with_features(
        self, inputs: list[Dialogue]
    ) -> tuple[list[EmotionPrediction], np.ndarray]:
        preds = self.predict(inputs)
        return preds, np.eye(len(preds), 4)


def test_read_states() -> None:
    (state,) = read_states(_Stub(), _dialogue())
    assert state.seeker == "seeker" and state.seeker_index == 2
    assert state.emotion.label == "sadness" and state.previous_strategy == "Question"
    assert state.features.shape == (4 + 4 + 2 + 3 + 9 + 2,)
    early = read_states(_Stub(), _dialogue(), [1, 2])
    assert [s.seeker_index for s in early] == [0, 0]
    assert early[1].previous_strategy == "Question" and early[0].previous_strategy is None
    opener = read_states(_Stub(), _dialogue(), [0], require_seeker=False)[0]
    assert opener.seeker_index == -1 and opener.emotion.vad == (0.0, 0.0, 0.0)
    with pytest.raises(EmoscopeError, match="out of range"):
        read_states(_Stub(), _dialogue(), [0])
    # A conversation with supporter turns only (one ESConv test conversation is like that).
    lone = Dialogue([Utterance("Hello, how can I help?", "supporter")])
    assert read_states(_Stub(), lone, [0, 1], require_seeker=False)[1].seeker_index == -1
    with pytest.raises(EmoscopeError, match="no turn by the seeker"):
        read_states(_Stub(), lone, [1], seeker="seeker")


def test_planner_learns_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = [STRATEGIES[i % 3] for i in range(300)]
    x = rng.normal(size=(300, 5))
    x[:, 0] += np.array([STRATEGIES.index(s) for s in y]) * 8.0  # separable on column 0
    planner = StrategyPlanner(epochs=200).fit(x, y)
    assert np.mean(np.array(planner.predict(x)) == np.array(y)) > 0.95
    proba = planner.predict_proba(x[:4])
    assert proba.shape == (4, 8) and np.allclose(proba.sum(1), 1.0)
    loaded = StrategyPlanner.load(planner.save(tmp_path / "planner"))
    assert np.allclose(loaded.predict_proba(x[:4]), proba, atol=1e-5)
    with pytest.raises(EmoscopeError, match="columns"):
        planner.predict(x[:, :3])
    with pytest.raises(EmoscopeError, match="not fitted"):
        StrategyPlanner().predict(x)
    with pytest.raises(EmoscopeError, match="unknown strategies"):
        StrategyPlanner().fit(x[:2], ["Question", "Hugging"])
    with pytest.raises(EmoscopeError, match="not a strategy-planner"):
        StrategyPlanner.load(tmp_path)


def test_balanced_planner_spreads_choices() -> None:
    rng = np.random.default_rng(1)
    y = ["Question"] * 90 + ["Information"] * 10
    x = rng.normal(size=(100, 3))
    plain = StrategyPlanner(epochs=100).fit(x, y).predict(x)
    balanced = StrategyPlanner(epochs=100, class_weight="balanced").fit(x, y).predict(x)
    assert balanced.count("Information") > plain.count("Information")


def test_target_emotion_rule() -> None:
    sad = target_emotion((-0.9, -0.4, -0.6))
    assert sad.rule == "rule" and sad.label in PALETTE
    assert -0.9 < sad.vad[0] < 0.0  # gentler than the seeker, not cheerful
    happy = target_emotion((0.9, 0.6, 0.5))
    assert happy.vad[0] > 0.3
    assert nearest_label((-0.9, -0.42, -0.67)) == "sadness"
    with pytest.raises(EmoscopeError, match="no VAD"):
        target_emotion(EmotionPrediction({"joy": 1.0}, "meld"))


def test_learned_transition(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, size=(200, 3))
    r = 0.5 * s + 0.1
    t = EmotionTransition(l2=1e-6).fit(s, r)
    assert np.allclose(t.predict(s[:3]), r[:3], atol=1e-4)
    back = EmotionTransition.load(t.save(tmp_path / "t.json"))
    assert target_emotion((0.2, 0.1, 0.0), back).rule == "learned"
    with pytest.raises(EmoscopeError, match="two"):
        EmotionTransition().fit(s, r[:, :2])


def test_cause_words() -> None:
    words = cause_words(_Stub(), "Today I feel terrible about work")
    assert words == ["terrible"]
    given = EmotionPrediction({"joy": 1.0}, "meld", cues={"cause_words": ["promotion"]})
    assert cause_words(_Stub(), "x", given) == ["promotion"]


def test_prompts() -> None:
    prompt = SupportPrompt()
    (state,) = read_states(_Stub(), _dialogue())
    target = target_emotion(state.emotion)
    msgs = prompt.messages(
        _dialogue(),
        "seeker",
        strategy="Reflection of feelings",
        emotion=state.emotion,
        causes=["terrible"],
        target=target,
    )
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert "sadness" in system and '"terrible"' in system and target.label in system
    assert "Reflection of feelings" in system and "reflect back the feelings" in system
    assert "Seeker: I lost my job" in user and "Supporter: Of course" in user
    plain = prompt.messages(_dialogue(), "seeker", plugin=False)
    assert "sadness" not in plain[0]["content"] and plain[1] == msgs[1]
    ask = prompt.strategy_messages(_dialogue(), "seeker")[1]["content"]
    assert all(s in ask for s in STRATEGIES)
    with pytest.raises(EmoscopeError, match="needs a strategy"):
        prompt.messages(_dialogue(), "seeker")


def test_template_errors(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[system]\nplain = "x"\n')
    with pytest.raises(EmoscopeError, match=r"\[system\] lacks plugin"):
        load_support_template(bad)
    bad.write_text("[system")
    with pytest.raises(EmoscopeError, match="not valid TOML"):
        load_support_template(bad)


def test_respond_uses_the_shipped_transition_unless_told_otherwise() -> None:
    from emoscope.support.emotion import EmotionTransition, target_emotion
    from emoscope.support.respond import TRANSITION_FILE, Supporter, default_planner_path

    shipped = EmotionTransition.load(default_planner_path() / TRANSITION_FILE)
    sup = Supporter(object(), recognizer=_Stub())  # type: ignore[arg-type]
    assert sup.transition is not None
    assert np.allclose(sup.transition.coef_, shipped.coef_)
    assert Supporter(object(), recognizer=_Stub(), transition=None).transition is None  # type: ignore[arg-type]
    seeker = read_states(_Stub(), _dialogue())[-1].emotion
    assert target_emotion(seeker, sup.transition).vad != target_emotion(seeker).vad
    with pytest.raises(EmoscopeError, match="transition must be"):
        Supporter(object(), recognizer=_Stub(), transition="learned")  # type: ignore[arg-type]
