"""The paired A/B harness: the same task items with and without each stimulus.

:func:`run_ab` asks every item of a task plainly and with each stimulus through any chat backend
and reports, per stimulus, the score, its change relative to the plain prompt, a paired
significance test (exact McNemar test on the discordant pairs for right/wrong tasks; a
sign-flip permutation test for graded tasks; :mod:`emoscope.stats`) and a paired bootstrap 95%
interval of the difference. Answers are generated and parsed, or, for multiple-choice tasks,
read off the likelihood of each choice (``scoring="label"``, :mod:`emoscope.stimuli.choice`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts
from emoscope.stats import (
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    significance_marker,
)
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.choice import ChoiceResult, require_scorer, score_questions
from emoscope.stimuli.heart import heart_rounds
from emoscope.stimuli.sets import Stimulus, load_stimuli, stimulus_info
from emoscope.stimuli.tasks import load_task

__all__ = [
    "ABResult",
    "StimulusRow",
    "compare_conditions",
    "label_outcomes",
    "label_predictions",
    "run_ab",
]


@dataclass
class StimulusRow:
    """One row of the A/B table: a condition compared with its reference condition."""

    condition: str
    text: str
    reference: str
    n: int
    reference_score: float
    score: float
    delta: float
    relative_change: float
    ci: tuple[float, float]
    p_value: float
    test: str
    significance: str
    b: int | None = None
    c: int | None = None
    parsed: int | None = None
    p_holm: float | None = None
    significance_holm: str | None = None


def _holm(rows: Sequence[StimulusRow]) -> None:
    """Fill in Holm-adjusted p-values over the stimulus rows of one task."""
    for r, q in zip(rows, holm_adjust([r.p_value for r in rows]), strict=True):
        r.p_holm, r.significance_holm = q, significance_marker(q)


@dataclass
class ABResult:
    """The outcome of :func:`run_ab`."""

    task: str
    n_items: int
    binary: bool
    baseline_score: float
    rows: list[StimulusRow]
    outputs: dict[str, list[str]] = field(default_factory=dict, repr=False)
    citation: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (outputs included when they were kept)."""
        return {
            "task": self.task,
            "n_items": self.n_items,
            "binary": self.binary,
            "baseline_score": self.baseline_score,
            "task_citation": self.citation,
            "rows": [vars(r) | {"ci": list(r.ci)} for r in self.rows],
            "outputs": self.outputs,
        }

    def format_table(self) -> str:
        """A plain-text table with significance columns (uncorrected, and Holm-corrected over
        the stimuli of the table)."""
        head = [
            "condition", "vs", "n", "ref", "score", "Δ", "rel.", "95% CI of Δ", "p", "sig.",
            "p.Holm", "sig.Holm",
        ]  # fmt: skip
        lines = [head]
        for r in self.rows:
            rel = "-" if not math.isfinite(r.relative_change) else f"{r.relative_change:+.1%}"
            lines.append(
                [
                    r.condition, r.reference, str(r.n), f"{r.reference_score:.3f}",
                    f"{r.score:.3f}", f"{r.delta:+.3f}", rel,
                    f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]", f"{r.p_value:.3g}", r.significance,
                    "-" if r.p_holm is None else f"{r.p_holm:.3g}", r.significance_holm or "-",
                ]
            )  # fmt: skip
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        return (
            "\n".join(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in lines
            )
            + "\n"
        )


def _compare(
    name: str,
    text: str,
    reference: str,
    ref_scores: Sequence[float | None],
    scores: Sequence[float | None],
    task: Task,
    n_boot: int,
    seed: int,
) -> StimulusRow:
    n_b: int | None = None
    n_c: int | None = None
    if task.binary:
        a = np.array([float(s or 0.0) for s in ref_scores])
        b = np.array([float(s or 0.0) for s in scores])
        n_b = int(((a == 1) & (b == 0)).sum())
        n_c = int(((a == 0) & (b == 1)).sum())
        p = mcnemar_exact(n_b, n_c)
        ref_score, score, test, parsed = float(a.mean()), float(b.mean()), "mcnemar-exact", len(a)
        ci = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    else:
        pairs = [
            (x, y)
            for x, y in zip(ref_scores, scores, strict=True)
            if x is not None and y is not None
        ]
        parsed = len(pairs)
        if not pairs:
            nan = float("nan")
            return StimulusRow(
                name, text, reference, 0, nan, nan, nan, nan, (nan, nan), nan, "sign-flip", "-",
                None, None, 0,
            )  # fmt: skip
        a = np.array([x for x, _ in pairs], dtype=float)
        b = np.array([y for _, y in pairs], dtype=float)
        ref_score, score = task.summary(list(a)), task.summary(list(b))
        p = sign_flip_test(a, b, seed=seed)
        lo, hi = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
        # Report the interval on the task's own scale (EQ-Bench: 10 * mean question score).
        scale = task.summary([1.0]) if task.aggregate else 1.0
        ci = (lo * scale, hi * scale)
        test = "sign-flip"
    delta = score - ref_score
    rel = delta / abs(ref_score) if ref_score else float("nan")
    return StimulusRow(
        name, text, reference, len(a), ref_score, score, delta, rel, ci, p, test,
        significance_marker(p), n_b, n_c, parsed,
    )  # fmt: skip


def _run_condition(
    backend: Any, task: Task, stimulus: Stimulus | None, batch_size: int
) -> tuple[list[str], list[float | None]]:
    convs = [item.messages(stimulus) for item in task.items]
    outs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=task.max_new_tokens
        )
    return outs, [task.score(item, o) for item, o in zip(task.items, outs, strict=True)]


def label_predictions(
    backend: Any, task: Task, stimuli: Sequence[Stimulus], items: Sequence[TaskItem] | None = None
) -> dict[str, list[list[ChoiceResult]]]:
    """The label-scoring result of every question of every item under the plain prompt and
    each stimulus: ``{"baseline": [[ChoiceResult per question] per item], stimulus id: ...}``
    (scores, prediction and whether it is right; :mod:`emoscope.stimuli.choice`).

    ``items`` defaults to the task's.

    Raises:
        EmoscopeError: the task is not multiple choice, or the backend cannot score choices.
    """
    require_scorer(backend)
    if task.questions is None:
        raise EmoscopeError(
            f"task {task.name!r} is not multiple choice: label scoring needs one of the "
            "multiple-choice tasks (sentiment, emotion, emobench-eu, emobench-ea)"
        )
    conditions: list[Stimulus | None] = [None, *stimuli]
    names = ["baseline", *(s.id for s in stimuli)]
    out: dict[str, list[list[ChoiceResult]]] = {n: [] for n in names}
    for item in task.items if items is None else items:
        per_question = score_questions(backend, task.questions(item), conditions)
        for ci, name in enumerate(names):
            out[name].append([q[ci] for q in per_question])
    return out


def label_outcomes(
    backend: Any, task: Task, stimuli: Sequence[Stimulus], items: Sequence[TaskItem] | None = None
) -> dict[str, list[float]]:
    """Right (1.0) or wrong (0.0) per item under the plain prompt and each stimulus, by label
    scoring (:func:`label_predictions`): ``{"baseline": [...], stimulus id: [...]}``.

    An item is right when every one of its questions is. ``items`` defaults to the task's.

    Raises:
        EmoscopeError: the task is not multiple choice, or the backend cannot score choices.
    """
    preds = label_predictions(backend, task, stimuli, items)
    return {
        name: [float(all(q.correct for q in item)) for item in rows] for name, rows in preds.items()
    }


def compare_conditions(
    task: Task,
    scores: Mapping[str, Sequence[float | None]],
    stimuli: Sequence[Stimulus],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> ABResult:
    """The A/B table of per-item ``scores`` (``"baseline"`` and one list per stimulus id, on
    the same items in the same order): each stimulus compared with the plain prompt."""
    base = list(scores["baseline"])
    rows = [
        _compare(s.id, s.text, "baseline", base, list(scores[s.id]), task, n_boot, seed)
        for s in stimuli
    ]
    _holm(rows)
    base_vals = [float(v) for v in base if v is not None]
    return ABResult(
        task.name, len(base), task.binary, task.summary(base_vals), rows, {}, task.citation
    )


def run_ab(
    backend: Any,
    task: Task | str,
    stimuli: Sequence[Stimulus] | str | None = "all",
    *,
    scoring: str = "generate",
    heart: int = 0,
    batch_size: int = 8,
    n_boot: int = 2000,
    seed: int = 0,
    keep_outputs: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ABResult:
    """Ask every item of ``task`` without and with each stimulus; compare paired results.

    Args:
        backend: a chat backend (:class:`emoscope.llm.base.ChatBackend`).
        task: a :class:`Task` or a name for :func:`load_task`.
        stimuli: :class:`Stimulus` list or a selection for :func:`load_stimuli` (``None`` or
            ``""``: no stimuli, e.g. to run HEART only).
        heart: if > 0, also run feedback rounds with the task's scorer as oracle verifier
            (right/wrong tasks only): ``feedback`` (affect-free, compared with the plain
            prompt) and ``HEART`` (emotional feedback, compared with ``feedback``), each with
            up to ``heart`` retries.
        scoring: ``"generate"`` (answers are generated and parsed by the task's scorer) or
            ``"label"`` (multiple-choice tasks: each choice scored by log-likelihood,
            :func:`label_outcomes`; the backend must score choices; no HEART rounds).
        keep_outputs: keep every generated answer in the result.

    Every stimulus row is compared with the plain prompt on the same items.
    """
    say = progress or (lambda _m: None)
    t = load_task(task) if isinstance(task, str) else task
    if isinstance(stimuli, str):
        chosen = load_stimuli(stimuli) if stimuli.strip() else []
    else:
        chosen = list(stimuli or [])
    if scoring == "label":
        if heart > 0:
            raise EmoscopeError("HEART rounds need generated answers: use scoring='generate'")
        say(f"{t.name}: {len(t.items)} items, label scoring, {len(chosen)} stimuli + baseline")
        return compare_conditions(
            t, label_outcomes(backend, t, chosen), chosen, n_boot=n_boot, seed=seed
        )
    if scoring != "generate":
        raise EmoscopeError(f"unknown scoring {scoring!r}; expected generate or label")
    say(f"{t.name}: {len(t.items)} items, baseline")
    base_out, base_scores = _run_condition(backend, t, None, batch_size)
    outputs = {"baseline": base_out} if keep_outputs else {}
    rows: list[StimulusRow] = []
    for s in chosen:
        say(f"{t.name}: {s.id}")
        out, scores = _run_condition(backend, t, s, batch_size)
        if keep_outputs:
            outputs[s.id] = out
        rows.append(_compare(s.id, s.text, "baseline", base_scores, scores, t, n_boot, seed))
    _holm(rows)
    if heart > 0:
        if not t.binary:
            raise EmoscopeError("HEART rounds need a right/wrong task (the verifier is the scorer)")
        convs = [item.messages() for item in t.items]
        verifiers = [
            functools.partial(lambda it, o: bool(t.score(it, o)), item) for item in t.items
        ]
        results = {}
        for name, affective in (("feedback", False), ("HEART", True)):
            say(f"{t.name}: {name} ({heart} rounds)")
            res = heart_rounds(
                backend, convs, verifiers, rounds=heart, affective=affective,
                max_new_tokens=t.max_new_tokens,
            )  # fmt: skip
            results[name] = [float(r.correct) for r in res]
            if keep_outputs:
                outputs[name] = [r.text for r in res]
        info = stimulus_info()["heart"]
        rows.append(
            _compare(
                "feedback", f"{heart} rounds of: {info['neutral_feedback']}", "baseline",
                base_scores, results["feedback"], t, n_boot, seed,
            )
        )  # fmt: skip
        rows.append(
            _compare(
                "HEART", f"{heart} rounds of emotional feedback ({', '.join(info['cycle'])})",
                "feedback", results["feedback"], results["HEART"], t, n_boot, seed,
            )
        )  # fmt: skip
    base_vals = [s for s in base_scores if s is not None]
    return ABResult(
        t.name, len(t.items), t.binary, t.summary([float(v) for v in base_vals]), rows, outputs,
        t.citation,
    )  # fmt: skip
