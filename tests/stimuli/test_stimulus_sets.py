"""Tests of emoscope.stimuli.sets: the stimulus data and how a stimulus joins a prompt."""

from __future__ import annotations

import pytest

from emoscope.errors import EmoscopeError
from emoscope.stimuli import (
    apply_stimulus,
    load_stimuli,
    stimulus_info,
)


def test_stimulus_sets() -> None:
    ep = load_stimuli("emotionprompt")
    npr = load_stimuli("negativeprompt")
    assert [s.id for s in ep] == [f"EP{i:02d}" for i in range(1, 12)]
    assert [s.id for s in npr] == [f"NP{i:02d}" for i in range(1, 11)]
    assert ep[1].text == "This is very important to my career."
    assert npr[0].text == "You've never been particularly good at this, have you?"
    # Numbered as in the paper's table (the authors' code list has NP04-NP07 in another order).
    assert npr[3].text == "Perhaps this task is just beyond your skill set."
    assert npr[5].text == "Everyone else managed to do it; why can't you?"
    assert ep[5].text.startswith("Provide your answer and a confidence score between 0-1")
    assert "2307.11760" in ep[0].citation and "2405.02814" in npr[0].citation
    assert len(load_stimuli("all")) == 21 and len(load_stimuli(None)) == 21
    assert [s.id for s in load_stimuli("ep03-EP05,NP10,EP04")] == ["EP03", "EP04", "EP05", "NP10"]
    for bad in ("EP12", "XX01", "EP01-EP13", "cheerful"):
        with pytest.raises(EmoscopeError):
            load_stimuli(bad)
    info = stimulus_info()
    assert set(info["heart"]["feedback"]) == {
        "anger",
        "disgust",
        "fear",
        "joy",
        "sadness",
        "surprise",
    }


def test_apply_stimulus() -> None:
    s = load_stimuli("EP02")[0]
    assert (
        apply_stimulus("Sum 2 and 3.  ", s) == "Sum 2 and 3. This is very important to my career."
    )
    assert apply_stimulus("Q", "Hi.", "prepend") == "Hi. Q"
    assert apply_stimulus("Q", None) == "Q"
    with pytest.raises(EmoscopeError):
        apply_stimulus("Q", s, "middle")
