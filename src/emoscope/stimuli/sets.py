"""Emotional stimulus sets and how a stimulus is added to a prompt.

Data in ``emoscope/data/stimuli/stimuli.json``, with their sources:

* EmotionPrompt EP01–EP11: Li et al. (2023), "Large Language Models Understand and Can be
  Enhanced by Emotional Stimuli", arXiv:2307.11760; appended to the task prompt.
* NegativePrompt NP01–NP10: Wang et al. (2024), "NegativePrompt: Leveraging Psychology for
  Large Language Models Enhancement via Negative Emotional Stimuli", IJCAI 2024,
  arXiv:2405.02814; appended to the task prompt.
* the HEART feedback phrases (:mod:`emoscope.stimuli.heart`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from emoscope.errors import EmoscopeError

__all__ = [
    "Stimulus",
    "apply_stimulus",
    "load_stimuli",
    "stimulus_info",
]


@dataclass(frozen=True)
class Stimulus:
    """One emotional stimulus phrase and where it comes from."""

    id: str
    text: str
    family: str
    theory: str = ""
    citation: str = ""


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("emoscope").joinpath("data/stimuli/stimuli.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def stimulus_info() -> dict[str, Any]:
    """The stimulus data file: families with citations, and the HEART feedback phrases."""
    return json.loads(json.dumps(_data()))  # a deep copy


def _all_stimuli() -> list[Stimulus]:
    out = []
    for family, info in _data()["families"].items():
        for s in info["stimuli"]:
            out.append(Stimulus(s["id"], s["text"], family, s.get("theory", ""), info["citation"]))
    return out


def load_stimuli(selection: str | Sequence[str] | None = "all") -> list[Stimulus]:
    """Stimuli by id or family.

    ``selection``: ``"all"``/``None``, a family (``emotionprompt``, ``negativeprompt``), ids
    (``"EP02"``), id ranges (``"EP01-EP05"``), or a comma-separated mix of these.

    Raises:
        EmoscopeError: an unknown id or family.
    """
    every = _all_stimuli()
    if selection is None:
        return every
    parts = selection.split(",") if isinstance(selection, str) else list(selection)
    by_id = {s.id.upper(): s for s in every}
    chosen: list[Stimulus] = []
    for raw in parts:
        part = raw.strip()
        key = part.upper()
        if not part:
            continue
        if part.lower() == "all":
            chosen += every
        elif part.lower() in _data()["families"]:
            chosen += [s for s in every if s.family == part.lower()]
        elif key in by_id:
            chosen.append(by_id[key])
        elif m := re.fullmatch(r"([A-Z]+)(\d+)\s*-\s*([A-Z]+)?(\d+)", key):
            prefix, a, b = m.group(1), int(m.group(2)), int(m.group(4))
            ids = [f"{prefix}{i:02d}" for i in range(a, b + 1)]
            missing = [i for i in ids if i not in by_id]
            if missing or a > b:
                raise EmoscopeError(f"unknown stimuli in range {part!r}: {', '.join(missing)}")
            chosen += [by_id[i] for i in ids]
        else:
            raise EmoscopeError(
                f"unknown stimulus {part!r}; expected an id such as EP02 or NP05, a range such "
                f"as EP01-EP05, or a family: {', '.join(_data()['families'])}, all"
            )
    return list(dict.fromkeys(chosen))


def apply_stimulus(prompt: str, stimulus: Stimulus | str | None, position: str = "append") -> str:
    """``prompt`` with the stimulus appended (as both papers do) or prepended."""
    if stimulus is None:
        return prompt
    text = stimulus.text if isinstance(stimulus, Stimulus) else stimulus
    if position == "append":
        return f"{prompt.rstrip()} {text}"
    if position == "prepend":
        return f"{text} {prompt.lstrip()}"
    raise EmoscopeError(f"unknown stimulus position {position!r}; expected append or prepend")
