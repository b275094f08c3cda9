"""Emotional stimuli in prompts: do they change what a model gets right?

* :mod:`~emoscope.stimuli.sets` — the stimulus sets: EmotionPrompt (Li et al., 2023,
  arXiv:2307.11760) and NegativePrompt (Wang et al., IJCAI 2024, arXiv:2405.02814), as data;
* :mod:`~emoscope.stimuli.heart` — HEART-style emotional feedback rounds (Pinto et al., 2025,
  arXiv:2509.22876) with an affect-free control;
* :mod:`~emoscope.stimuli.base` and :mod:`~emoscope.stimuli.tasks` — what is asked: built-in
  sets (``sentiment``, ``emotion``, ``arithmetic``), EmoBench (Sabour et al., 2024;
  ``emobench-eu``, ``emobench-ea``; :mod:`~emoscope.stimuli.emobench`) and EQ-Bench v2 (Paech,
  2023; ``eqbench``; :mod:`~emoscope.stimuli.eqbench`), each scored as its authors do, and
  by label scoring: :mod:`~emoscope.stimuli.choice` reads multiple-choice answers off each
  choice's log-likelihood (as lm-evaluation-harness does), and EQ-Bench intensities can be the
  expected value of the model's distribution over 0–10 (a documented variant);
* :mod:`~emoscope.stimuli.harness` — the paired A/B harness (:func:`run_ab`): per stimulus, the
  score, its change relative to the plain prompt, a paired significance test and a paired
  bootstrap 95% interval (:mod:`emoscope.stats`).

Chat backends: anything with ``generate(conversations, **options) -> list`` where a
conversation is a list of ``{"role", "content"}`` messages and each result is a string or has
``.text``, i.e. :class:`emoscope.llm.base.ChatBackend` (``emoscope.llm.hf.HFBackend`` for local
models, ``emoscope.llm.openai.OpenAIBackend`` for servers). See :func:`load_backend`.
"""

from __future__ import annotations

from emoscope.llm.base import generate_texts, load_backend
from emoscope.stats import (
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    significance_marker,
)
from emoscope.stimuli.base import Task, TaskItem
from emoscope.stimuli.choice import ChoiceQuestion, ChoiceResult, require_scorer, score_questions
from emoscope.stimuli.emobench import (
    emobench_messages,
    emobench_questions,
    emobench_summary,
    parse_emobench_answer,
    run_emobench,
    score_emobench,
)
from emoscope.stimuli.eqbench import (
    eqbench_benchmark_score,
    eqbench_intensity_distributions,
    eqbench_prompt,
    eqbench_question_score,
    eqbench_question_score_v1,
    expected_intensities,
    parse_eqbench_answer,
    run_eqbench,
)
from emoscope.stimuli.harness import (
    ABResult,
    StimulusRow,
    compare_conditions,
    label_outcomes,
    label_predictions,
    run_ab,
)
from emoscope.stimuli.heart import HeartResult, heart_rounds
from emoscope.stimuli.sets import Stimulus, apply_stimulus, load_stimuli, stimulus_info
from emoscope.stimuli.tasks import BUILTIN_TASKS, TASK_NAMES, load_task

__all__ = [
    "BUILTIN_TASKS",
    "TASK_NAMES",
    "ABResult",
    "ChoiceQuestion",
    "ChoiceResult",
    "HeartResult",
    "Stimulus",
    "StimulusRow",
    "Task",
    "TaskItem",
    "apply_stimulus",
    "compare_conditions",
    "emobench_messages",
    "emobench_questions",
    "emobench_summary",
    "eqbench_benchmark_score",
    "eqbench_intensity_distributions",
    "eqbench_prompt",
    "eqbench_question_score",
    "eqbench_question_score_v1",
    "expected_intensities",
    "generate_texts",
    "heart_rounds",
    "holm_adjust",
    "label_outcomes",
    "label_predictions",
    "load_backend",
    "load_stimuli",
    "load_task",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "parse_emobench_answer",
    "parse_eqbench_answer",
    "require_scorer",
    "run_ab",
    "run_emobench",
    "run_eqbench",
    "score_emobench",
    "score_questions",
    "sign_flip_test",
    "significance_marker",
    "stimulus_info",
]
