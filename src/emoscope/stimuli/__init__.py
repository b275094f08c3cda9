"""Emotional stimuli in prompts: do they change what a model gets right?

Stimulus sets (data in ``emoscope/data/stimuli/stimuli.json``, with their sources):

* EmotionPrompt EP01–EP11: Li et al. (2023), "Large Language Models Understand and Can be
  Enhanced by Emotional Stimuli", arXiv:2307.11760; appended to the task prompt.
* NegativePrompt NP01–NP10: Wang et al. (2024), "NegativePrompt: Leveraging Psychology for
  Large Language Models Enhancement via Negative Emotional Stimuli", IJCAI 2024,
  arXiv:2405.02814; appended to the task prompt.
* HEART-style feedback rounds: Pinto et al. (2025), "HEART: Emotionally-driven test-time
  scaling of Language Models", arXiv:2509.22876. After a wrong answer (judged by a verifier
  callback) the model gets emotionally coloured feedback, the emotion changing from round to
  round, and answers again; an affect-free feedback of the same number of rounds is the
  control. The phrases are emoscope's own, not the paper's set.

The paired A/B harness (:func:`run_ab`) asks the same task items with and without each
stimulus through any chat backend and reports, per stimulus, the score, its change relative to
the plain prompt, a paired significance test (exact McNemar test on the discordant pairs for
right/wrong tasks; a sign-flip permutation test for graded tasks) and a paired bootstrap 95%
interval of the difference.

Tasks: small built-in sets (``sentiment``, ``emotion``, ``arithmetic``), EmoBench (Sabour et
al., 2024; ``emobench-eu``, ``emobench-ea``) and EQ-Bench v2 (Paech, 2023; ``eqbench``), each
scored as its authors do:

* EmoBench: an EU item counts as right only if both the emotion and the cause are right; EA
  items by their single answer; accuracy per category (EU ``coarse_category``, EA
  ``category``) and overall (github.com/Sahandfer/EmoBench, ``src/data.py``). Answers are the
  JSON object the official prompt asks for (``answer_q1``/``answer_q2`` or ``answer`` holding
  a choice letter). The prompt wording here is emoscope's paraphrase of the official template.
* EQ-Bench v2 (github.com/EQ-bench/EQ-Bench, ``lib/scoring.py``): ``Emotion: score`` pairs are
  parsed (after removing ``*`` and ``#``); a question is scored only if exactly four pairs
  naming the four reference emotions (case-insensitive) are found. With ``d`` the absolute
  difference from the ``reference_answer_fullscale`` intensity, each emotion costs 0 if
  ``d = 0``, ``6.5 / (1 + exp(-1.2 (d - 4)))`` if ``0 < d <= 5`` and ``d`` otherwise; the
  question scores ``10 - 0.7477 * total cost`` (0.7477 makes random answers score 0). The
  benchmark score is ``10 * mean`` of the parsed questions (0–100); with revision, the revised
  pass is used if it scores at least as high and parses at least 95% as often as the first
  pass. The raw answers are not normalised in v2; the legacy v1 score, which rescales the
  four answers to sum to 10 and uses ``reference_answer``, is :func:`eqbench_question_score_v1`.

Chat backends: anything with ``generate(conversations, **options) -> list`` where a
conversation is a list of ``{"role", "content"}`` messages and each result is a string or has
``.text``, i.e. :class:`emoscope.llm.base.ChatBackend` (``emoscope.llm.hf.HFBackend`` for local
models, ``emoscope.llm.openai.OpenAIBackend`` for servers). See :func:`load_backend`.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.llm.base import generate_texts, load_backend
from emoscope.llm.parsing import parse_label
from emoscope.stats import (
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    significance_marker,
)

__all__ = [
    "BUILTIN_TASKS",
    "TASK_NAMES",
    "ABResult",
    "HeartResult",
    "Stimulus",
    "StimulusRow",
    "Task",
    "TaskItem",
    "apply_stimulus",
    "emobench_messages",
    "eqbench_benchmark_score",
    "eqbench_prompt",
    "eqbench_question_score",
    "eqbench_question_score_v1",
    "generate_texts",
    "heart_rounds",
    "load_backend",
    "load_stimuli",
    "load_task",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "parse_emobench_answer",
    "parse_eqbench_answer",
    "run_ab",
    "run_emobench",
    "run_eqbench",
    "score_emobench",
    "sign_flip_test",
    "significance_marker",
    "stimulus_info",
]


# --------------------------------------------------------------------------------------------
# Stimuli


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


# --------------------------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True)
class TaskItem:
    """One task question: the messages to send and what a right answer is."""

    id: str
    prompt: str
    answer: Any = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def messages(self, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
        """Chat messages for this item, with ``stimulus`` appended to the user prompt."""
        msgs = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*msgs, {"role": "user", "content": apply_stimulus(self.prompt, stimulus)}]


@dataclass
class Task:
    """A named list of items and how to score an answer.

    ``score(item, output)`` returns 1.0/0.0 for right/wrong tasks (``binary``), a number for
    graded tasks, or ``None`` when the answer cannot be parsed (graded tasks only; for binary
    tasks an unparsable answer is simply wrong).
    """

    name: str
    items: list[TaskItem]
    score: Callable[[TaskItem, str], float | None]
    binary: bool = True
    max_new_tokens: int = 32
    citation: str = ""
    aggregate: Callable[[list[float]], float] | None = None

    def summary(self, scores: Sequence[float]) -> float:
        """Task-level score from item scores (mean, unless the task defines its own)."""
        vals = list(scores)
        if not vals:
            return float("nan")
        return self.aggregate(vals) if self.aggregate else float(np.mean(vals))


_SENTIMENT = (
    ("The soup was warm and the staff were lovely.", "positive"),
    ("I waited an hour and nobody apologised.", "negative"),
    ("This is the best phone I have owned.", "positive"),
    ("The battery died after two days.", "negative"),
    ("What a wonderful surprise party, thank you all!", "positive"),
    ("The film dragged on and the ending made no sense.", "negative"),
    ("Our guide was patient, funny and knew everything.", "positive"),
    ("The hotel room smelled of smoke and the sheets were stained.", "negative"),
    ("I finally passed my driving test!", "positive"),
    ("They cancelled my order without telling me.", "negative"),
    ("The new park is clean, green and full of kids playing.", "positive"),
    ("My package arrived broken and customer service hung up on me.", "negative"),
    ("The concert was magical from start to finish.", "positive"),
    ("This update made the app slower and buggier.", "negative"),
    ("She cooked us a delicious dinner after the move.", "positive"),
    ("The bus was late again and I missed my interview.", "negative"),
    ("Great value for money, I would buy it again.", "positive"),
    ("The instructions were useless and parts were missing.", "negative"),
    ("We laughed all evening; it was a perfect night.", "positive"),
    ("I regret every cent I spent on this course.", "negative"),
)

_EMOTION = (
    ("How dare they cancel my flight without a word!", "anger"),
    ("He keeps taking credit for my work and I am furious.", "anger"),
    ("The smell from the bin made me want to throw up.", "disgust"),
    ("People who spit on the pavement are revolting.", "disgust"),
    ("I heard footsteps behind me in the dark alley.", "fear"),
    ("My hands shake every time I think about the surgery.", "fear"),
    ("We won the championship and I can't stop smiling!", "joy"),
    ("My best friend is coming to visit tomorrow, yay!", "joy"),
    ("I miss my grandmother so much since she passed away.", "sadness"),
    ("Nobody came to my birthday and I sat alone all night.", "sadness"),
    ("Wait, you're telling me she got married last week?!", "surprise"),
    ("I opened the door and there was a horse in my kitchen.", "surprise"),
    ("The train leaves at 9:15 from platform four.", "neutral"),
    ("Please send the report to the finance team.", "neutral"),
)

_SENTIMENT_PROMPT = (
    "Determine whether the sentiment of the sentence is positive or negative. Answer with one "
    "word: positive or negative.\n\nSentence: {text}"
)
_EMOTION_PROMPT = (
    "Which emotion does the sentence express? Answer with one word from: anger, disgust, fear, "
    "joy, sadness, surprise, neutral.\n\nSentence: {text}"
)


def _label_task(name: str, rows: Sequence[tuple[str, str]], prompt: str) -> Task:
    labels = sorted({lab for _, lab in rows})
    items = [
        TaskItem(f"{name}-{i + 1}", prompt.format(text=t), lab) for i, (t, lab) in enumerate(rows)
    ]

    def score(item: TaskItem, output: str) -> float:
        return float(parse_label(output, labels) == item.answer)

    return Task(name, items, score, binary=True, max_new_tokens=8, citation="emoscope built-in")


def _arithmetic_task(n: int = 30, seed: int = 7) -> Task:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        a, b = rng.randint(12, 989), rng.randint(12, 989)
        items.append(
            TaskItem(
                f"arithmetic-{i + 1}", f"What is {a} + {b}? Answer with the number only.", a + b
            )
        )

    def score(item: TaskItem, output: str) -> float:
        m = re.search(r"-?\d[\d,]*", output)
        return float(m is not None and int(m.group(0).replace(",", "")) == item.answer)

    return Task(
        "arithmetic", items, score, binary=True, max_new_tokens=12, citation="emoscope built-in"
    )


BUILTIN_TASKS = ("sentiment", "emotion", "arithmetic")
TASK_NAMES = (*BUILTIN_TASKS, "emobench-eu", "emobench-ea", "eqbench")


def load_task(
    name: str,
    *,
    root: str | Path | None = None,
    language: str = "en",
    limit: int | None = None,
    revise: bool = False,
) -> Task:
    """A task by name: one of :data:`TASK_NAMES`.

    ``root`` is the data root for EmoBench and EQ-Bench; ``limit`` keeps the first items;
    ``revise`` (EQ-Bench) keeps the official first-pass / critique / revised-scores format.
    """
    key = name.strip().lower()
    if key == "sentiment":
        task = _label_task("sentiment", _SENTIMENT, _SENTIMENT_PROMPT)
    elif key == "emotion":
        task = _label_task("emotion", _EMOTION, _EMOTION_PROMPT)
    elif key == "arithmetic":
        task = _arithmetic_task()
    elif key in ("emobench-eu", "emobench-ea"):
        task = _emobench_task(key[-2:].upper(), root, language)
    elif key == "eqbench":
        task = _eqbench_task(root, revise)
    else:
        raise EmoscopeError(f"unknown task {name!r}; expected one of: {', '.join(TASK_NAMES)}")
    if limit is not None:
        task.items = task.items[:limit]
    if not task.items:
        raise EmoscopeError(f"task {name!r} has no items")
    return task


# --------------------------------------------------------------------------------------------
# EmoBench

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EMOBENCH_CITATION = (
    "Sabour, S., Liu, S., Zhang, Z., Liu, J. M., Zhou, J., Sunaryo, A. S., Li, J., Lee, T. M. C., "
    "Mihalcea, R., & Huang, M. (2024). EmoBench: Evaluating the Emotional Intelligence of Large "
    "Language Models. ACL 2024."
)
_EB_SYSTEM = {
    "en": (
        "# Instructions\n\nYou will read a scenario, one or more questions and lettered choices. "
        "Put yourself in the place of the person involved, think about how they see the "
        "situation, and pick the choice that best matches their perspective or emotional "
        "reaction.\n\n# Output\n\nGive exactly one answer per question and nothing else: no "
        "explanation, only this JSON object:\n```json\n{fields}\n```"
    ),
    "zh": (
        "# 说明\n\n你将读到一个场景、一个或多个问题以及带字母的选项。"
        "请站在当事人的角度思考，选出最符合其观点或情绪反应的选项。\n\n# 输出\n\n"
        "每个问题只给一个答案，不要解释，只输出以下JSON：\n"
        "```json\n{fields}\n```"
    ),
}
_EB_FIELDS = {
    ("EU", "en"): '{\n  "answer_q1": "<letter of your choice for Question 1>",\n'
    '  "answer_q2": "<letter of your choice for Question 2>"\n}',
    (
        "EU",
        "zh",
    ): '{\n  "answer_q1": "<问题1所选选项的字母>",\n  "answer_q2": "<问题2所选选项的字母>"\n}',
    ("EA", "en"): '{\n  "answer": "<letter of your choice>"\n}',
    ("EA", "zh"): '{\n  "answer": "<所选选项的字母>"\n}',
}


def _lettered(choices: Sequence[str]) -> str:
    return "\n".join(f"{_LETTERS[i]}) {c}" for i, c in enumerate(choices))


def emobench_messages(item: Any, stimulus: Stimulus | str | None = None) -> list[dict[str, str]]:
    """System and user messages for one EmoBench item (an ``EmoBenchItem``).

    The user message follows the structure of the official template (scenario, questions,
    lettered choices); the stimulus, if any, is appended to it.
    """
    lang = item.language if item.language in ("en", "zh") else "en"
    system = _EB_SYSTEM[lang].format(fields=_EB_FIELDS[(item.task, lang)])
    if item.task == "EU":
        if lang == "zh":
            user = (
                f"## 场景\n{item.scenario}\n\n## 问题 1\n"
                f"在这种情况下，{item.subject}最终会感受到什么情绪？\n\n"
                f"## 问题 1 的选项\n{_lettered(item.emotion_choices)}\n\n## 问题 2\n"
                f"{item.subject}为什么会有这些情绪？\n\n"
                f"## 问题 2 的选项\n{_lettered(item.cause_choices)}"
            )
        else:
            user = (
                f"## Scenario\n{item.scenario}\n\n## Question 1\nWhich emotion(s) would "
                f"{item.subject} end up feeling in this situation?\n\n## Choices for Question 1\n"
                f"{_lettered(item.emotion_choices)}\n\n## Question 2\nWhy would {item.subject} "
                f"feel this way in this situation?\n\n## Choices for Question 2\n"
                f"{_lettered(item.cause_choices)}"
            )
    else:
        qtype = item.subcategory.lower()
        if lang == "zh":
            user = (
                f"## 场景\n{item.scenario}\n\n## 问题\n"
                f"在这个场景中，{item.subject}最有效的{item.subcategory}是什么？\n\n"
                f"## 选项\n{_lettered(item.choices)}"
            )
        else:
            user = (
                f"## Scenario\n{item.scenario}\n\n## Question\nIn this scenario, what is the most "
                f"effective {qtype} for {item.subject}?\n\n## Choices\n{_lettered(item.choices)}"
            )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": apply_stimulus(user, stimulus)},
    ]


def parse_emobench_answer(text: str, task: str) -> dict[str, str] | None:
    """The choice letters of an EmoBench answer, or ``None`` if there are none.

    Reads the JSON object (inside a ```` ```json ```` fence or bare); if that fails, looks for
    ``"answer_q1": "B"``-style pairs. Letters are upper-cased; a value such as ``"B) text"``
    counts as ``B``.
    """
    keys = ("answer_q1", "answer_q2") if task == "EU" else ("answer",)
    obj: Any = None
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    candidates += re.findall(r"\{[^{}]*\}", text, re.S)
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and any(k in obj for k in keys):
            break
        obj = None
    found: dict[str, str] = {}
    for k in keys:
        raw: Any = obj.get(k) if isinstance(obj, dict) else None
        if raw is None:
            m = re.search(rf'"?{k}"?\s*[:=]\s*"?\s*([A-Za-z])\b', text)
            raw = m.group(1) if m else None
        if raw is None:
            continue
        m2 = re.match(r"\s*\(?([A-Za-z])\b", str(raw))
        if m2:
            found[k] = m2.group(1).upper()
    return found if len(found) == len(keys) else None


def _emobench_correct(item: Any, answer: Mapping[str, str] | None) -> bool:
    if answer is None:
        return False
    if item.task == "EU":
        emo = _LETTERS[item.emotion_choices.index(item.emotion_label)]
        cause = _LETTERS[item.cause_choices.index(item.cause_label)]
        return answer.get("answer_q1") == emo and answer.get("answer_q2") == cause
    return answer.get("answer") == _LETTERS[item.choices.index(item.label)]


def score_emobench(items: Sequence[Any], outputs: Sequence[str]) -> dict[str, Any]:
    """Official EmoBench scores: accuracy per category and ``Overall`` (0–1), plus counts.

    Categories are EU ``coarse_category`` and EA ``category``; an unparsable answer is wrong.
    """
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    by_cat: dict[str, list[bool]] = {}
    right: list[bool] = []
    unparsed = 0
    for item, out in zip(items, outputs, strict=True):
        ans = parse_emobench_answer(out, item.task)
        unparsed += ans is None
        ok = _emobench_correct(item, ans)
        right.append(ok)
        by_cat.setdefault(item.category, []).append(ok)
    return {
        "accuracy": {cat: float(np.mean(v)) for cat, v in sorted(by_cat.items())}
        | {"Overall": float(np.mean(right)) if right else float("nan")},
        "n": {cat: len(v) for cat, v in sorted(by_cat.items())} | {"Overall": len(right)},
        "unparsed": unparsed,
        "correct": right,
    }


def _emobench_task(task: str, root: str | Path | None, language: str) -> Task:
    from emoscope.datasets import load_emobench

    bench = load_emobench(task, root, language)
    items = [
        TaskItem(
            it.id,
            emobench_messages(it)[1]["content"],
            it,
            system=emobench_messages(it)[0]["content"],
            meta={"category": it.category},
        )
        for it in bench
    ]

    def score(item: TaskItem, output: str) -> float:
        return float(_emobench_correct(item.answer, parse_emobench_answer(output, task)))

    return Task(
        f"emobench-{task.lower()}", items, score, binary=True, max_new_tokens=64,
        citation=EMOBENCH_CITATION,
    )  # fmt: skip


def run_emobench(
    backend: Any,
    task: str = "EU",
    *,
    language: str = "en",
    stimulus: Stimulus | str | None = None,
    root: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
) -> dict[str, Any]:
    """Run EmoBench EU or EA on a chat backend and score it the official way."""
    from emoscope.datasets import load_emobench

    items = load_emobench(task, root, language)[:limit]
    convs = [emobench_messages(it, stimulus) for it in items]
    outs: list[str] = []
    for start in range(0, len(convs), batch_size):
        outs += generate_texts(
            backend, convs[start : start + batch_size], max_new_tokens=max_new_tokens
        )
    result = score_emobench(items, outs)
    result.update({"task": task.upper(), "language": language, "citation": EMOBENCH_CITATION})
    result["stimulus"] = stimulus.id if isinstance(stimulus, Stimulus) else stimulus
    return result


# --------------------------------------------------------------------------------------------
# EQ-Bench v2

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


def _eqbench_task(root: str | Path | None, revise: bool) -> Task:
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


# --------------------------------------------------------------------------------------------
# HEART-style feedback rounds


@dataclass
class HeartResult:
    """Outcome of feedback rounds for one conversation."""

    text: str
    correct: bool
    rounds_used: int
    transcript: list[dict[str, str]]


def heart_rounds(
    backend: Any,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    verifiers: Sequence[Callable[[str], bool]],
    *,
    rounds: int = 3,
    affective: bool = True,
    emotions: Sequence[str] | None = None,
    max_new_tokens: int | None = None,
) -> list[HeartResult]:
    """Answer, check with the verifier, give feedback, answer again, up to ``rounds`` retries.

    Round 0 is the plain answer. After each wrong answer the conversation gets the answer and
    a feedback message: with ``affective`` the phrase of the next emotion in ``emotions``
    (default: the HEART cycle of the data file, alternating critical and encouraging tones),
    otherwise the affect-free control phrase. Conversations are processed as a batch; each
    stops at its first verified answer.
    """
    if len(conversations) != len(verifiers):
        raise EmoscopeError(f"{len(conversations)} conversations but {len(verifiers)} verifiers")
    if rounds < 0:
        raise EmoscopeError(f"rounds must be >= 0, got {rounds}")
    heart = _data()["heart"]
    cycle = list(emotions) if emotions is not None else list(heart["cycle"])
    unknown = [e for e in cycle if e not in heart["feedback"]]
    if unknown:
        raise EmoscopeError(
            f"no HEART feedback for {unknown}; known: {', '.join(heart['feedback'])}"
        )
    states = [[dict(m) for m in c] for c in conversations]
    results: list[HeartResult | None] = [None] * len(states)
    last = [""] * len(states)
    for r in range(rounds + 1):
        todo = [i for i, res in enumerate(results) if res is None]
        if not todo:
            break
        outs = generate_texts(backend, [states[i] for i in todo], max_new_tokens=max_new_tokens)
        for i, out in zip(todo, outs, strict=True):
            last[i] = out
            states[i].append({"role": "assistant", "content": out})
            if verifiers[i](out):
                results[i] = HeartResult(out, True, r, states[i])
            elif r < rounds:
                phrase = (
                    heart["feedback"][cycle[r % len(cycle)]]
                    if affective
                    else heart["neutral_feedback"]
                )
                states[i].append({"role": "user", "content": phrase})
    return [
        res if res is not None else HeartResult(last[i], False, rounds, states[i])
        for i, res in enumerate(results)
    ]


# --------------------------------------------------------------------------------------------
# The paired A/B harness


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
        """A plain-text table with a significance column."""
        head = ["condition", "vs", "n", "ref", "score", "Δ", "rel.", "95% CI of Δ", "p", "sig."]
        lines = [head]
        for r in self.rows:
            rel = "-" if not math.isfinite(r.relative_change) else f"{r.relative_change:+.1%}"
            lines.append(
                [
                    r.condition, r.reference, str(r.n), f"{r.reference_score:.3f}",
                    f"{r.score:.3f}", f"{r.delta:+.3f}", rel,
                    f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]", f"{r.p_value:.3g}", r.significance,
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


def run_ab(
    backend: Any,
    task: Task | str,
    stimuli: Sequence[Stimulus] | str | None = "all",
    *,
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
        keep_outputs: keep every generated answer in the result.

    Every stimulus row is compared with the plain prompt on the same items.
    """
    say = progress or (lambda _m: None)
    t = load_task(task) if isinstance(task, str) else task
    if isinstance(stimuli, str):
        chosen = load_stimuli(stimuli) if stimuli.strip() else []
    else:
        chosen = list(stimuli or [])
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
        info = _data()["heart"]
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
