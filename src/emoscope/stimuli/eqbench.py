"""EQ-Bench v2 (Paech, 2023, "EQ-Bench: An Emotional Intelligence Benchmark for Large Language
Models", arXiv:2312.06281), scored as its authors do (github.com/EQ-bench/EQ-Bench,
``lib/scoring.py``).

``Emotion: score`` pairs are parsed (after removing ``*`` and ``#``); a question is scored only
if exactly four pairs naming the four reference emotions (case-insensitive) are found. With
``d`` the absolute difference from the ``reference_answer_fullscale`` intensity, each emotion
costs 0 if ``d = 0``, ``6.5 / (1 + exp(-1.2 (d - 4)))`` if ``0 < d <= 5`` and ``d`` otherwise;
the question scores ``10 - 0.7477 * total cost`` (0.7477 makes random answers score 0). The
benchmark score is ``10 * mean`` of the parsed questions (0–100); with revision, the revised
pass is used if it scores at least as high and parses at least 95% as often as the first pass.
The raw answers are not normalised in v2; the legacy v1 score, which rescales the four answers
to sum to 10 and uses ``reference_answer``, is :func:`eqbench_question_score_v1`. The items are
read by :func:`emoscope.datasets.load_eqbench`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.llm.base import generate_texts
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "EQBENCH_CITATION",
    "eqbench_benchmark_score",
    "eqbench_prompt",
    "eqbench_question_score",
    "eqbench_question_score_v1",
    "eqbench_task",
    "parse_eqbench_answer",
    "run_eqbench",
]

EQBENCH_CITATION = (
    "Paech, S. J. (2023). EQ-Bench: An Emotional Intelligence Benchmark for Large Language "
    "Models. arXiv:2312.06281."
)
_EQ_PAIR = re.compile(r"(\w+):\s+(\d+)")
_EQ_ADJUST = 0.7477


def eqbench_prompt(prompt: str, revise: bool = False) -> str:
    """The question prompt as sent in the official v2 run.

    Without ``revise`` the critique and revised-score parts are cut out and ``Your answer:``
    is appended, as the official harness does for single-pass v2 runs.
    """
    if revise:
        return prompt
    p = prompt.replace(
        " Then critique your answer by thinking it through step by step. Finally, give your "
        "revised scores.",
        "",
    ).replace("First pass scores:\n", "")
    start, end = p.find("Critique: <your critique here>"), p.find("[End of answer]")
    if start != -1 and end != -1:
        p = p[:start] + "\n" + p[end:]
    return p + "\nYour answer:\n"


def parse_eqbench_answer(text: str, revise: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """``(first pass, revised)`` emotion → score-string dicts, parsed as the official harness.

    Markdown ``*`` and ``#`` are removed, then ``Name: number`` pairs are collected (later
    repeats of a name overwrite earlier ones). With ``revise`` the first pass is the text
    between ``First pass scores:`` and ``Revised scores:`` and the revised pass what follows.
    """
    clean = text.replace("*", "").replace("#", "")
    if not revise:
        return dict(_EQ_PAIR.findall(clean)), {}
    first: dict[str, str] = {}
    revised: dict[str, str] = {}
    m = re.search(r"First pass scores:(.*?)Revised scores:", clean, re.S)
    if m:
        first = dict(_EQ_PAIR.findall(m.group(1)))
    m = re.search(r"Revised scores:(.*?)$", clean, re.S)
    if m:
        revised = dict(_EQ_PAIR.findall(m.group(1)))
    return first, revised


def _eq_matched(
    reference: Mapping[str, float], answer: Mapping[str, Any]
) -> dict[str, float] | None:
    if len(answer) != 4:
        return None
    ref = {k.lower(): float(v) for k, v in reference.items()}
    got: dict[str, float] = {}
    for name, value in answer.items():
        if name.lower() in ref:
            got[name.lower()] = float(value)
    if len(got) != 4 or set(got) != set(ref):
        return None
    return got


def eqbench_question_score(
    reference: Mapping[str, float], answer: Mapping[str, Any]
) -> float | None:
    """EQ-Bench v2 ("fullscale") score of one question; ``None`` if it does not count.

    ``reference``: emotion → reference intensity (``reference_answer_fullscale``);
    ``answer``: emotion → predicted intensity as parsed (4 entries naming the 4 reference
    emotions, case-insensitive). No normalisation of the answer (that was v1).
    """
    got = _eq_matched(reference, answer)
    if got is None:
        return None
    ref = {k.lower(): float(v) for k, v in reference.items()}
    total = 0.0
    for name, value in got.items():
        d = abs(value - ref[name])
        if d == 0:
            cost = 0.0
        elif d <= 5:
            cost = 6.5 / (1 + math.exp(-1.2 * (d - 4)))
        else:
            cost = d
        total += cost
    return 10 - _EQ_ADJUST * total


def eqbench_question_score_v1(
    reference: Mapping[str, float], answer: Mapping[str, Any]
) -> float | None:
    """Legacy EQ-Bench v1 score: answers rescaled to sum to 10, ``10 - sum |diff|``.

    ``reference`` is ``reference_answer``; ``None`` if the answer does not count or sums to 0.
    """
    got = _eq_matched(reference, answer)
    if got is None:
        return None
    total = sum(got.values())
    if total <= 0:
        return None
    ref = {k.lower(): float(v) for k, v in reference.items()}
    return 10 - sum(abs(v / total * 10 - ref[k]) for k, v in got.items())


def eqbench_benchmark_score(
    first_pass: Sequence[float | None], revised: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """Benchmark score (0–100) from per-question scores, as the official harness computes it.

    ``score = 100 * mean(parsed scores) / 10`` for each pass; with a revised pass, it is used
    when it scores at least as high as the first pass and parses at least 95% as often.
    """

    def one(scores: Sequence[float | None]) -> tuple[float, int]:
        vals = [s for s in scores if s is not None]
        return (100 * (sum(vals) / len(vals) / 10) if vals else 0.0), len(vals)

    s1, p1 = one(first_pass)
    out: dict[str, Any] = {
        "first_pass_score": s1, "first_pass_parseable": p1, "n_questions": len(first_pass),
    }  # fmt: skip
    if revised is None:
        out.update({"score": s1, "parseable": p1, "used": "first_pass"})
        return out
    s2, p2 = one(revised)
    out.update({"revised_score": s2, "revised_parseable": p2})
    if s2 >= s1 and p2 >= 0.95 * p1:
        out.update({"score": s2, "parseable": p2, "used": "revised"})
    else:
        out.update({"score": s1, "parseable": p1, "used": "first_pass"})
    return out


def _eq_reference(item: Any) -> dict[str, float]:
    ref = item.reference_fullscale if item.reference_fullscale is not None else item.reference
    return dict(ref)


def eqbench_task(root: str | Path | None, revise: bool) -> Task:
    from emoscope.datasets import load_eqbench

    items = [
        TaskItem(f"eqbench-{it.id}", eqbench_prompt(it.prompt, revise), it)
        for it in load_eqbench(root)
    ]

    def score(item: TaskItem, output: str) -> float | None:
        first, rev = parse_eqbench_answer(output, revise)
        return eqbench_question_score(_eq_reference(item.answer), rev if revise else first)

    return Task(
        "eqbench", items, score, binary=False, max_new_tokens=600 if revise else 60,
        citation=EQBENCH_CITATION, aggregate=lambda v: 10 * float(np.mean(v)),
    )  # fmt: skip


def run_eqbench(
    backend: Any,
    *,
    root: str | Path | None = None,
    revise: bool = False,
    stimulus: Stimulus | str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Run EQ-Bench v2 on a chat backend and score it with the official v2 formula.

    Uses 60 new tokens per answer (600 with ``revise``), as the official harness does.
    """
    from emoscope.datasets import load_eqbench

    items = load_eqbench(root)[:limit]
    convs = [
        [{"role": "user", "content": apply_stimulus(eqbench_prompt(it.prompt, revise), stimulus)}]
        for it in items
    ]
    outs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=600 if revise else 60
        )
    firsts, reviseds = [], []
    for it, out in zip(items, outs, strict=True):
        first, rev = parse_eqbench_answer(out, revise)
        ref = _eq_reference(it)
        firsts.append(eqbench_question_score(ref, first))
        reviseds.append(eqbench_question_score(ref, rev) if revise else None)
    result = eqbench_benchmark_score(firsts, reviseds if revise else None)
    result.update(
        {
            "version": "v2",
            "revise": revise,
            "question_scores": firsts
            if not revise
            else {"first_pass": firsts, "revised": reviseds},
            "citation": EQBENCH_CITATION,
            "stimulus": stimulus.id if isinstance(stimulus, Stimulus) else stimulus,
        }
    )
    return result
