"""Reading LLM answers: labels constrained to a taxonomy, verbalised confidence, rationale, JSON.

Label matching tries, in order: the answer equal to a label (``exact``, then ``case`` for a
case-insensitive match), a label appearing as a whole word (``contains``; earliest first), a
synonym from ``data/prompts/synonyms.json`` or a label of another taxonomy mapped with
:func:`emoscope.labels.map_label` (``synonym``), and a near-miss spelling found with
:mod:`difflib` (``fuzzy``). Synonyms inside a phrase and near-miss spellings are only accepted
in a short answer (at most :data:`SHORT_ANSWER_WORDS` words) or on a marked answer line
(``Answer: ...``, ``<answer>...</answer>``): in longer prose they matched words that name no
label ("Ross" -> "gross" -> disgust, "sorry" -> "worry" -> fear). Quoted text (the utterance the
model repeats) and the speaker names given by the caller are never read as labels. Anything
else is ``unknown``: the caller counts it as a parse failure, nothing raises.

Verbalised confidence follows EmoCaliber (Wu et al., 2025, "EmoCaliber: Advancing Reliable
Visual Emotion Comprehension via Confidence Verbalization and Calibration"): the model ends its
answer with ``<confidence>0.8</confidence>`` (a probability, or a percentage).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from emoscope.labels import TAXONOMIES, Taxonomy, get_taxonomy, map_label

__all__ = [
    "SHORT_ANSWER_WORDS",
    "ParsedAnswer",
    "extract_rationale",
    "match_labels",
    "parse_answer",
    "parse_confidence",
    "parse_json_object",
    "parse_label",
    "strip_thinking",
    "synonyms_for",
]

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_TAG = r"<{0}>\s*(.*?)\s*</{0}>"
_CONF_TAG = re.compile(_TAG.format("confidence"), re.DOTALL | re.IGNORECASE)
_CONF_LINE = re.compile(r"\bconfidence\s*[:=]\s*([0-9]*\.?[0-9]+\s*%?)", re.IGNORECASE)
_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+)\s*(%?)$")
_ANSWER_TAGS = ("answer", "label", "emotion")
_RATIONALE_TAGS = ("rationale", "reason", "reasoning", "explanation")
_ANSWER_LINE = re.compile(
    r"^\s*[*#_\s]*(?:final\s+)?(?:answer|label|emotion(?:\s+label)?|prediction)[*_\s]*[:：-]\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
SHORT_ANSWER_WORDS = 4
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|«[^»\n]*»')
_STRIP = " \t\r\n\"'`*_.,;:!?()[]{}<>«»“”‘’"


@dataclass(frozen=True)
class ParsedAnswer:
    """What was read from one answer.

    Attributes:
        labels: canonical taxonomy labels found, best first (empty when parsing failed).
        method: how the first label was matched: ``exact``, ``case``, ``contains``,
            ``synonym``, ``fuzzy`` or ``unknown``.
        confidence: the verbalised confidence in ``[0, 1]``, if the answer gave one.
        rationale: the model's stated reasoning, if any.
        raw: the answer as received.
    """

    labels: tuple[str, ...]
    method: str
    confidence: float | None = None
    rationale: str | None = None
    raw: str = ""

    @property
    def label(self) -> str | None:
        """The first label, or ``None`` when parsing failed."""
        return self.labels[0] if self.labels else None

    @property
    def parse_failed(self) -> bool:
        """Whether no label of the taxonomy could be read."""
        return not self.labels


def strip_thinking(text: str) -> str:
    """``text`` without ``<think>...</think>`` blocks; an unclosed ``<think>`` drops the rest."""
    text = _THINK.sub(" ", text)
    open_at = text.lower().find("<think>")
    if open_at >= 0:
        text = text[:open_at]
    return text.strip()


def parse_confidence(text: str) -> float | None:
    """The verbalised confidence in ``[0, 1]``: ``<confidence>0.8</confidence>``, ``80%``, ``80``.

    Also reads a ``Confidence: 0.8`` line. Values above 1 are read as percentages; anything
    unreadable or above 100 gives ``None``.
    """
    m = _CONF_TAG.search(text)
    raw = m.group(1) if m else None
    if raw is None:
        line = _CONF_LINE.search(text)
        raw = line.group(1) if line else None
    if raw is None:
        return None
    num = _NUMBER.match(raw.strip())
    if not num:
        return None
    value = float(num.group(1))
    if num.group(2) or value > 1.0:
        value /= 100.0
    return value if 0.0 <= value <= 1.0 else None


def _tag_content(text: str, tags: Sequence[str]) -> str | None:
    for tag in tags:
        m = re.search(_TAG.format(tag), text, re.DOTALL | re.IGNORECASE)
        if m:
            return m.group(1).strip()
    return None


def extract_rationale(text: str) -> str | None:
    """The reasoning in an answer: a ``<rationale>`` (or ``<reason>``...) tag, else ``<think>``."""
    found = _tag_content(text, _RATIONALE_TAGS)
    if found:
        return found
    think = _THINK.search(text)
    if think and think.group(1).strip():
        return think.group(1).strip()
    return None


@functools.cache
def _synonym_table() -> dict[str, dict[str, str]]:
    raw = resources.files("emoscope").joinpath("data/prompts/synonyms.json").read_text("utf-8")
    table = json.loads(raw)
    return {k: v for k, v in table.items() if not k.startswith("_")}


@functools.cache
def synonyms_for(taxonomy: str) -> dict[str, str]:
    """Words accepted for ``taxonomy``'s labels: ``{word: label}`` (lowercase words).

    Explicit synonyms come first; labels of the other built-in taxonomies are added, mapped into
    ``taxonomy`` with :func:`emoscope.labels.map_label`.
    """
    tax = get_taxonomy(taxonomy)
    out: dict[str, str] = {}
    for other in TAXONOMIES.values():
        if other.name == tax.name:
            continue
        for lab in other.labels:
            if lab.lower() in (x.lower() for x in tax.labels):
                continue
            try:
                out.setdefault(lab.lower(), map_label(lab, other, tax))
            except (KeyError, ValueError):
                continue
    explicit = _synonym_table().get(tax.name, {})
    out.update({w.lower(): tax.normalize(lab) for w, lab in explicit.items()})
    for a, lab in tax.aliases:
        out[a.lower()] = lab
    return out


def _words_pattern(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z])" + re.escape(word) + r"(?![A-Za-z])", re.IGNORECASE)


def _find_all(text: str, vocab: Mapping[str, str]) -> list[tuple[int, str]]:
    """(position, label) of every whole-word occurrence of a vocabulary word in ``text``."""
    hits: list[tuple[int, str]] = []
    # Longer words first, so "no emotion" wins over a shorter word inside it.
    taken: list[tuple[int, int]] = []
    for word in sorted(vocab, key=len, reverse=True):
        for m in _words_pattern(word).finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            hits.append((m.start(), vocab[word]))
    return sorted(hits)


def _dedupe(labels: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(labels))


def match_labels(
    text: str, taxonomy: str | Taxonomy, *, multi_label: bool = False, prose: bool | None = None
) -> tuple[tuple[str, ...], str]:
    """Labels of ``taxonomy`` named in ``text`` and the method that found them.

    Returns ``((), "unknown")`` when nothing matches. With ``multi_label`` every label found by
    the first successful method is returned (in order of appearance); otherwise only the first.
    ``prose`` (default: more than :data:`SHORT_ANSWER_WORDS` words) allows only exact labels as
    whole words: no synonyms inside the text and no near-miss spellings.
    """
    tax = get_taxonomy(taxonomy)
    cleaned = text.strip().strip(_STRIP)
    if not cleaned:
        return (), "unknown"
    labels = {lab.lower(): lab for lab in tax.labels}
    if cleaned in tax.labels:
        return (cleaned,), "exact"
    if cleaned.lower() in labels:
        return (labels[cleaned.lower()],), "case"
    syn = synonyms_for(tax.name)
    if cleaned.lower() in syn:
        return (syn[cleaned.lower()],), "synonym"
    n = None if multi_label else 1
    found = _find_all(cleaned, labels)
    if found:
        return _dedupe([lab for _, lab in found])[:n], "contains"
    if prose is None:
        prose = len(cleaned.split()) > SHORT_ANSWER_WORDS
    if prose:
        return (), "unknown"
    found = _find_all(cleaned, syn)
    if found:
        return _dedupe([lab for _, lab in found])[:n], "synonym"
    vocab = {**syn, **labels}
    fuzzy: list[str] = []
    for word in re.findall(r"[A-Za-z]{3,}", cleaned):
        close = difflib.get_close_matches(word.lower(), list(vocab), n=1, cutoff=0.8)
        if close:
            fuzzy.append(vocab[close[0]])
            if not multi_label:
                break
    if fuzzy:
        return _dedupe(fuzzy), "fuzzy"
    return (), "unknown"


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label mentioned first in a generated answer (case-insensitive, whole words).

    The plain rule of the zero-shot probe baseline and the built-in stimulus tasks; recognisers
    use :func:`match_labels`, which also knows synonyms, near-misses and quoted text.
    """
    low = text.lower()
    best: tuple[int, str] | None = None
    for lab in labels:
        m = re.search(rf"\b{re.escape(lab.lower())}\b", low)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), lab)
    return None if best is None else best[1]


def _answer_candidates(text: str) -> list[tuple[str, bool]]:
    """``(text, is_prose)`` where the label is most likely written, most specific first.

    A tagged answer and a marked answer line are never prose; the first line and the whole
    answer are prose when longer than :data:`SHORT_ANSWER_WORDS` words.
    """
    out: list[tuple[str, bool]] = []
    tagged = _tag_content(text, _ANSWER_TAGS)
    if tagged is not None:
        out.append((tagged, False))
    rest = text
    for tag in ("confidence", *_RATIONALE_TAGS, *_ANSWER_TAGS):
        rest = re.sub(_TAG.format(tag), " ", rest, flags=re.DOTALL | re.IGNORECASE)
    rest = rest.strip()
    lines = _ANSWER_LINE.findall(rest)
    if lines:
        out.append((lines[-1], False))
    if rest:
        first_line = rest.splitlines()[0]
        out.extend([(first_line, len(first_line.split()) > SHORT_ANSWER_WORDS), (rest, True)])
    return out


def _mask(text: str, names: Sequence[str]) -> str:
    """``text`` without quoted passages and without the given (speaker) names."""
    stripped = text.strip()
    if not _QUOTED.fullmatch(stripped):  # an answer that is only a quoted word stays
        text = _QUOTED.sub(" ", text)
    for name in sorted({n for n in names if n and n.strip()}, key=len, reverse=True):
        text = _words_pattern(name.strip()).sub(" ", text)
    return text


def parse_answer(
    text: str,
    taxonomy: str | Taxonomy,
    *,
    multi_label: bool | None = None,
    ignore: Sequence[str] = (),
) -> ParsedAnswer:
    """Read the label(s), confidence and rationale of one LLM answer. Never raises on content.

    ``multi_label`` defaults to the taxonomy's own setting (GoEmotions answers may list several
    labels, separated by commas). ``ignore`` lists words never read as labels (the dialogue's
    speaker names); quoted passages are skipped too.
    """
    tax = get_taxonomy(taxonomy)
    multi = tax.multi_label if multi_label is None else multi_label
    raw = text if isinstance(text, str) else ""
    body = strip_thinking(raw)
    confidence = parse_confidence(body)
    rationale = extract_rationale(raw)
    for candidate, prose in _answer_candidates(body):
        labels, method = match_labels(_mask(candidate, ignore), tax, multi_label=multi, prose=prose)
        if labels:
            return ParsedAnswer(labels, method, confidence, rationale, raw)
    return ParsedAnswer((), "unknown", confidence, rationale, raw)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _balanced_objects(text: str) -> list[str]:
    """Substrings of ``text`` that are brace-balanced ``{...}`` blocks (strings respected)."""
    out: list[str] = []
    depth, start, in_str, escape = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def parse_json_object(text: str, keys: Sequence[str]) -> dict[str, str] | None:
    """The string values of ``keys`` from the first JSON object in ``text`` holding all of them.

    Tolerates code fences, text around the object, ``<think>`` blocks, and (as a last resort)
    an object that is not valid JSON but has ``"Key": "value"`` pairs. ``None`` if a key is
    missing.
    """
    body = strip_thinking(text) if isinstance(text, str) else ""
    sources = [m.group(1) for m in _FENCE.finditer(body)] + [body]
    for src in sources:
        for block in _balanced_objects(src):
            try:
                obj = json.loads(block)
            except ValueError:
                continue
            if isinstance(obj, dict) and all(isinstance(obj.get(k), str) for k in keys):
                return {k: " ".join(str(obj[k]).split()) for k in keys}
    found: dict[str, str] = {}
    for k in keys:
        m = re.search(r'"' + re.escape(k) + r'"\s*:\s*"((?:[^"\\]|\\.)*)"', body, re.DOTALL)
        if not m:
            return None
        try:
            value = json.loads(f'"{m.group(1)}"')
        except ValueError:
            value = m.group(1)
        found[k] = " ".join(str(value).split())
    return found
