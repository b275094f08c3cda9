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

Expected-value variant (emoscope's, not part of the official protocol): instead of parsing a
generated answer, each emotion's intensity is the expected value of the model's distribution
over 0–10, read off the likelihood of ``"Emotion: k"`` for every ``k`` (label scoring, as
lm-evaluation-harness scores choices); the v2 formula then scores it. Every question counts,
so there is no parse failure, but an expected value is rarely an integer, so the ``d = 0``
case of the formula almost never applies: a model that would answer the right integer gets a
little less than 10 for it. Report it beside the official score, never in place of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts
from emoscope.llm.scoring import softmax
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.choice import require_scorer
from emoscope.stimuli.sets import Stimulus, apply_stimulus

__all__ = [
    "EQBENCH_CITATION",
    "INTENSITIES",
    "eqbench_benchmark_score",
    "eqbench_intensity_distributions",
    "eqbench_prompt",
    "eqbench_question_score",
    "eqbench_question_score_v1",
    "eqbench_task",
    "expected_intensities",
    "parse_eqbench_answer",
    "run_eqbench",
]

EQBENCH_CITATION = (
    "Paech, S. J. (2023). EQ-Bench: An Emotional Intelligence Benchmark for Large Language "
    "Models. arXiv:2312.06281."
)
_EQ_PAIR = re.compile(r"(\w+):\s+(\d+)")
_EQ_ADJUST = 0.7477
INTENSITIES = tuple(range(11))
"""The intensity scale of the answers, 0–10."""


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
    when it scores at least as high as the first pass and parses at least 95% as often. A pass
    in which no answer parses has no score (``None``), not 0: nothing was measured.
    """

    def one(scores: Sequence[float | None]) -> tuple[float | None, int]:
        vals = [s for s in scores if s is not None]
        return (100 * (sum(vals) / len(vals) / 10) if vals else None), len(vals)

    s1, p1 = one(first_pass)
    out: dict[str, Any] = {
        "first_pass_score": s1, "first_pass_parseable": p1, "n_questions": len(first_pass),
    }  # fmt: skip
    if revised is None:
        out.update({"score": s1, "parseable": p1, "used": "first_pass"})
        return out
    s2, p2 = one(revised)
    out.update({"revised_score": s2, "revised_parseable": p2})
    if s2 is not None and (s1 is None or s2 >= s1) and p2 >= 0.95 * p1:
        out.update({"score": s2, "parseable": p2, "used": "revised"})
    else:
        out.update({"score": s1, "parseable": p1, "used": "first_pass"})
    return out


def eqbench_constant_score(items: Sequence[Any], value: float = 5.0) -> float:
    """EQ-Bench v2 score (0-100) of answering ``value`` for every emotion of every item.

    With ``value`` 5, the middle of the 0-10 scale, this is what the expected-value variant
    gives a model whose distributions are flat: the floor that variant's scores compare with.
    """
    scores = [
        eqbench_question_score(ref, {k: value for k in ref})
        for ref in (_eq_reference(it) for it in items)
    ]
    return float(eqbench_benchmark_score(scores)["score"] or 0.0)


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


def eqbench_intensity_distributions(
    backend: Any,
    items: Sequence[Any],
    *,
    stimulus: Stimulus | str | None = None,
) -> list[dict[str, np.ndarray]]:
    """The model's distribution over intensities 0–10 of each emotion of each question.

    For emotion ``E`` the 11 answers ``"E: 0\\n"`` … ``"E: 10\\n"`` are scored as the start
    of the reply to the (single-pass) official prompt; their softmax is the distribution (the
    shared ``"E:"`` cancels, the newline keeps ``1`` from also counting ``10``). Each emotion is
    read as if its line came first, independently of the others. One scoring call per
    question (44 choices). The backend must score choices.
    """
    require_scorer(backend)
    out: list[dict[str, np.ndarray]] = []
    for it in items:
        conv = [{"role": "user", "content": apply_stimulus(eqbench_prompt(it.prompt), stimulus)}]
        choices = [f"{e}: {v}\n" for e in it.emotions for v in INTENSITIES]
        (row,) = backend.score([conv], choices)
        ll = np.asarray(row, dtype=np.float64).reshape(len(it.emotions), len(INTENSITIES))
        out.append({e: softmax(ll[k]) for k, e in enumerate(it.emotions)})
    return out


def expected_intensities(dists: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Expected value of each emotion's distribution over :data:`INTENSITIES`."""
    values = np.asarray(INTENSITIES, dtype=np.float64)
    return {e: float(np.dot(p, values)) for e, p in dists.items()}


def run_eqbench(
    backend: Any,
    *,
    root: str | Path | None = None,
    revise: bool = False,
    stimulus: Stimulus | str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    scoring: str = "generate",
) -> dict[str, Any]:
    """Run EQ-Bench v2 on a chat backend and score it with the official v2 formula.

    ``scoring="generate"`` is the official protocol: 60 new tokens per answer (600 with
    ``revise``), parsed as the official harness does; unparsed questions do not count and
    ``parseable`` says how many did. ``scoring="expected"`` is emoscope's variant for models
    that cannot keep the answer format: each intensity is the expected value of the model's
    distribution over 0–10 (:func:`eqbench_intensity_distributions`), so every question is
    scored; same v2 formula, not comparable one-to-one with official leaderboard figures.
    """
    from emoscope.datasets import load_eqbench

    items = load_eqbench(root)[:limit]
    if scoring == "expected":
        if revise:
            raise EmoscopeError("the expected-value variant has no revision pass")
        answers = [
            expected_intensities(d)
            for d in eqbench_intensity_distributions(backend, items, stimulus=stimulus)
        ]
        scores = [
            eqbench_question_score(_eq_reference(it), a)
            for it, a in zip(items, answers, strict=True)
        ]
        result = eqbench_benchmark_score(scores)
        result.update(
            {
                "version": "v2",
                "scoring": "expected",
                "revise": False,
                "question_scores": scores,
                "answers": answers,
                "citation": EQBENCH_CITATION,
                "stimulus": stimulus.id if isinstance(stimulus, Stimulus) else stimulus,
            }
        )
        return result
    if scoring != "generate":
        raise EmoscopeError(f"unknown scoring {scoring!r}; expected generate or expected")
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
            "scoring": "generate",
            "revise": revise,
            "question_scores": firsts
            if not revise
            else {"first_pass": firsts, "revised": reviseds},
            "citation": EQBENCH_CITATION,
            "stimulus": stimulus.id if isinstance(stimulus, Stimulus) else stimulus,
        }
    )
    return result
