"""ESConv (Liu et al., ACL 2021): emotional-support conversations with supporter strategies.

Files in ``esconv/``:

* ``dev_with_strategy.tsv``, ``test_with_strategy.tsv``: one line per supporter turn. A line is
  the conversation so far as segments ``weight role turn text`` joined by `` EOS `` (role 0 is
  the help-seeker, 1 the supporter; ``turn`` is the turn number in the conversation); the last
  segment is the supporter's reply, its text prefixed by the strategy in brackets
  (``[Questions] How are you?``). Earlier supporter segments carry their strategy too.
* ``strategy.json``: the eight strategy names.
* ``failed_esconv.json``: conversations judged unsuccessful (``emotion_type``,
  ``problem_type``, ``situation``, ``survey_score``, ``dialog``).

The release spells two strategies differently in the TSVs (``Questions``, ``Other``) and in
``strategy.json`` (``Question``, ``Others``); both spellings map to :data:`STRATEGIES`.
The full train split is not part of the shared data; emoscope trains on dev and tests on test.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emoscope.datasets._common import (
    BadRows,
    DatasetOptionError,
    check_utf8,
    dataset_file,
    get_info,
    json_array_items,
    load_json,
    read_text,
)
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import DataError

__all__ = [
    "SEEKER",
    "STRATEGIES",
    "SUPPORTER",
    "FailedConversation",
    "SupportTurn",
    "conversations",
    "load_esconv",
    "load_esconv_failed",
    "load_esconv_strategies",
    "normalize_strategy",
]

SEEKER = "seeker"
SUPPORTER = "supporter"
STRATEGIES = (
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
)
_ALIASES = {s.lower(): s for s in STRATEGIES} | {"questions": "Question", "other": "Others"}
_ROLES = {"0": SEEKER, "1": SUPPORTER}
_SEGMENT = re.compile(r"^\s*(\d+(?:\.\d+)?) ([01]) (\d+) ?(.*)$", re.S)
_STRATEGY = re.compile(r"^\[([^\]]+)\]\s*(.*)$", re.S)
EXPECTED_TSV = (
    "segments 'weight role turn text' joined by ' EOS ' (role 0 seeker, 1 supporter), the last "
    "one a supporter reply starting with its [strategy]"
)
EXPECTED_FAILED = (
    "a JSON array of conversations with emotion_type, problem_type, situation and a dialog "
    "list of {speaker, content}"
)


def normalize_strategy(name: str) -> str:
    """The canonical strategy name (case-insensitive; brackets and release spellings accepted).

    Raises:
        DatasetOptionError: not one of the eight ESConv strategies.
    """
    key = name.strip().strip("[]").strip().lower()
    found = _ALIASES.get(key)
    if found is None:
        raise DatasetOptionError(
            f"unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}"
        )
    return found


@dataclass(frozen=True)
class SupportTurn:
    """One supporter turn of ESConv with the conversation before it.

    Attributes:
        history: the turns before the reply (speakers ``seeker`` / ``supporter``; supporter
            utterances carry ``meta["strategy"]``), as far back as the release keeps them.
        reply: the human supporter's reply (without the strategy prefix).
        strategy: the reply's strategy, one of :data:`STRATEGIES`.
        turn: the reply's turn number in its conversation.
        conversation: the index of its conversation in the file. The release has no ids; a
            line continues the previous line's conversation when its history holds the
            previous reply (same turn number and text).
        line: the line in the file.
    """

    history: Dialogue
    reply: str
    strategy: str
    turn: int
    conversation: int = 0
    line: int = field(default=0, compare=False)

    @property
    def previous_strategy(self) -> str | None:
        """The strategy of the last supporter turn in the history, if any."""
        for u in reversed(self.history.utterances):
            if u.speaker == SUPPORTER:
                return u.meta.get("strategy")
        return None


def _segment(raw: str, path: Path, line: int, k: int) -> tuple[str, int, str, str | None]:
    m = _SEGMENT.match(raw)
    if m is None:
        raise DataError(path, line, f"segment {k + 1} is {raw[:40]!r}", EXPECTED_TSV)
    role, turn, text = _ROLES[m.group(2)], int(m.group(3)), m.group(4).strip()
    strategy = None
    if role == SUPPORTER:
        s = _STRATEGY.match(text)
        if s is None:
            raise DataError(
                path, line, f"supporter segment {k + 1} has no [strategy] prefix", EXPECTED_TSV
            )
        try:
            strategy = normalize_strategy(s.group(1))
        except DatasetOptionError as e:
            raise DataError(path, line, str(e), EXPECTED_TSV) from None
        text = s.group(2).strip()
    return role, turn, text, strategy


def _parse_line(raw: str, path: Path, line: int) -> SupportTurn:
    segments = [_segment(s, path, line, k) for k, s in enumerate(raw.split(" EOS "))]
    role, turn, reply, strategy = segments[-1]
    if role != SUPPORTER or strategy is None:
        raise DataError(path, line, "the last segment is not a supporter reply", EXPECTED_TSV)
    if not reply:
        raise DataError(path, line, "the supporter reply is empty", EXPECTED_TSV)
    history = [
        Utterance(text, speaker=r, id=str(t), meta={"strategy": st} if st is not None else {})
        for r, t, text, st in segments[:-1]
        if text
    ]
    return SupportTurn(
        Dialogue(history, id=f"{path.stem}:{line}"), reply, strategy, turn, line=line
    )


def _continues(turn: SupportTurn, prev: SupportTurn) -> bool:
    return any(
        u.id == str(prev.turn) and u.text == prev.reply and u.speaker == SUPPORTER
        for u in turn.history
    )


def load_esconv(
    split: str = "test", root: str | Path | None = None, *, skip_bad: bool = False
) -> list[SupportTurn]:
    """Load the supporter turns of an ESConv split (``dev`` or ``test``), in file order.

    Raises:
        DatasetOptionError: an unknown split (``train`` is not in the shared data).
        DatasetNotFoundError: the split's file is missing.
        DataError: a malformed line (unless ``skip_bad``).
    """
    files = get_info("esconv").files
    key = "dev" if split.strip().lower() == "validation" else split.strip().lower()
    if key not in files:
        raise DatasetOptionError(
            f"unknown ESConv split {split!r}; expected one of: {', '.join(files)} "
            "(the train split is not included in the shared data)"
        )
    path = dataset_file("esconv", files[key], root)
    bad = BadRows(skip_bad)
    turns: list[SupportTurn] = []
    for n, raw in enumerate(read_text(path, lenient=skip_bad).splitlines(), start=1):
        if not raw.strip():
            continue
        with bad:
            check_utf8([raw], path, n)
            turn = _parse_line(raw, path, n)
            if turns:
                conv = turns[-1].conversation
                turn = replace(turn, conversation=conv if _continues(turn, turns[-1]) else conv + 1)
            turns.append(turn)
    bad.finish()
    return turns


def conversations(turns: Sequence[SupportTurn]) -> list[tuple[Dialogue, list[int]]]:
    """Rebuild whole conversations from the windowed turns of :func:`load_esconv`.

    Returns, per conversation, the dialogue of every utterance seen (ordered by turn number,
    the supporter replies included with their strategies in ``meta``) and, for each of its
    supporter turns in input order, the position of the reply in that dialogue (so the history
    of that turn is ``dialogue.utterances[:position]``).
    """
    groups: dict[int, list[SupportTurn]] = {}
    for t in turns:
        groups.setdefault(t.conversation, []).append(t)
    out: list[tuple[Dialogue, list[int]]] = []
    for conv, members in groups.items():
        by_turn: dict[int, Utterance] = {}
        for t in members:
            for u in t.history:
                by_turn.setdefault(int(u.id or 0), u)
            by_turn[t.turn] = Utterance(
                t.reply, SUPPORTER, id=str(t.turn), meta={"strategy": t.strategy}
            )
        order = sorted(by_turn)
        where = {k: i for i, k in enumerate(order)}
        dialogue = Dialogue([by_turn[k] for k in order], id=f"esconv-{conv}")
        out.append((dialogue, [where[t.turn] for t in members]))
    return out


def load_esconv_strategies(root: str | Path | None = None) -> tuple[str, ...]:
    """The strategies listed in ``strategy.json``, canonical spelling, file order."""
    path = dataset_file("esconv", "strategy.json", root)
    expected = "a JSON array of the eight strategy names in brackets"
    value = load_json(path, expected=expected)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise DataError(path, 1, "not a list of strings", expected)
    try:
        return tuple(normalize_strategy(s) for s in value)
    except DatasetOptionError as e:
        raise DataError(path, None, str(e), expected) from None


@dataclass(frozen=True)
class FailedConversation:
    """One conversation of ``failed_esconv.json``.

    ``dialogue`` holds the turns with speakers ``seeker`` / ``supporter`` (supporter turns keep
    their strategy in ``meta``); ``survey`` is the release's ``survey_score`` object.
    """

    emotion_type: str
    problem_type: str
    situation: str
    dialogue: Dialogue
    survey: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int = field(default=0, compare=False)


def _failed(obj: Any, path: Path, line: int, index: int) -> FailedConversation:
    if not isinstance(obj, dict):
        raise DataError(path, line, f"item {index} is not an object", EXPECTED_FAILED)
    strings = {}
    for key in ("emotion_type", "problem_type", "situation"):
        value = obj.get(key)
        if not isinstance(value, str):
            raise DataError(path, line, f"item {index}: {key} is {value!r}", EXPECTED_FAILED)
        strings[key] = value.strip()
    turns = obj.get("dialog")
    if not isinstance(turns, list) or not turns:
        problem = f"item {index}: dialog is not a non-empty list"
        raise DataError(path, line, problem, EXPECTED_FAILED)
    utts = []
    for t in turns:
        if not isinstance(t, dict) or not isinstance(t.get("content"), str):
            raise DataError(path, line, f"item {index}: a turn lacks content", EXPECTED_FAILED)
        seeker = t.get("speaker") in ("seeker", "speaker", "usr")
        ann_value = t.get("annotation")
        ann: dict[str, Any] = ann_value if isinstance(ann_value, dict) else {}
        meta = {}
        if not seeker and isinstance(ann.get("strategy"), str):
            # A few annotations use names outside the eight (e.g. "Approval and Reassurance"):
            # those are kept as written.
            raw = ann["strategy"].strip()
            meta["strategy"] = _ALIASES.get(raw.lower(), raw)
        utts.append(Utterance(t["content"].strip(), SEEKER if seeker else SUPPORTER, meta=meta))
    survey_value = obj.get("survey_score")
    survey: dict[str, Any] = survey_value if isinstance(survey_value, dict) else {}
    return FailedConversation(
        strings["emotion_type"],
        strings["problem_type"],
        strings["situation"],
        Dialogue(utts, id=f"failed-{index}"),
        dict(survey),
        line,
    )


def load_esconv_failed(
    root: str | Path | None = None, *, skip_bad: bool = False
) -> list[FailedConversation]:
    """The conversations of ``failed_esconv.json`` (speaker ``speaker`` is the seeker)."""
    path = dataset_file("esconv", "failed_esconv.json", root)
    text = read_text(path)
    items = json_array_items(path, text, expected=EXPECTED_FAILED)
    if items is None:
        raise DataError(path, 1, "the file is not a JSON array", EXPECTED_FAILED)
    bad = BadRows(skip_bad)
    out: list[FailedConversation] = []
    for i, (line, obj) in enumerate(items):
        with bad:
            out.append(_failed(obj, path, line, i))
    bad.finish()
    return out
