"""Emotional support: emoscope as the small emotion model that guides an LLM's reply.

* :mod:`~emoscope.support.state`: what emoscope reads from a dialogue history (who the seeker
  is, their emotion and VAD, the features a planner uses);
* :mod:`~emoscope.support.planner`: :class:`StrategyPlanner`, the next supporter strategy
  (ESConv's eight) from those features;
* :mod:`~emoscope.support.emotion`: the reply's target emotion in VAD space and the words that
  cause the seeker's emotion;
* :mod:`~emoscope.support.prompt`: the HEF-style prompt carrying all of it to the LLM.
"""

from emoscope.support.emotion import (
    EmotionTransition,
    TargetEmotion,
    cause_words,
    target_emotion,
)
from emoscope.support.planner import StrategyPlanner
from emoscope.support.prompt import SupportPrompt, load_support_template
from emoscope.support.state import SupportState, find_seeker, read_states

__all__ = [
    "EmotionTransition",
    "StrategyPlanner",
    "SupportPrompt",
    "SupportState",
    "TargetEmotion",
    "cause_words",
    "find_seeker",
    "load_support_template",
    "read_states",
    "target_emotion",
]
