"""Prompts of the ``llm`` recogniser: templates as data, stage-1 emotion cues, the final prompt.

Implements the prompting (P) part of PRC-Emo (Li et al., "Do LLMs Feel? Teaching Emotion
Recognition with Prompts, Retrieval, and Curriculum Learning", AAAI 2026):

* **Stage 1** asks an LLM, for each target utterance, for an *explicit* and an *implicit*
  emotion description (JSON ``{"ExplicitEmotion", "ImplicitEmotion"}``, 20–50 words each, no
  label words) from the last ``cue_window`` (5) turns ending with the target, and for each
  speaker of a dialogue a ~100-word profile from the whole dialogue. :class:`CueGenerator` runs
  these prompts and keeps the results in one JSON file per dialogue.
* **The final prompt** puts, in the paper's order: the role instruction, the definitions of
  explicit and implicit emotion, the context window, the speaker profile, both descriptions,
  the retrieved demonstrations (``"text" → label (from dataset, distance)``), the allowed
  labels; then the question.

Templates live in ``emoscope/data/prompts/<name>.toml`` (``meld``, ``emorynlp``, ``generic``),
one per dataset taxonomy, and can be replaced by a user file. Variants: ``zero-shot`` (role,
context, labels), ``few-shot`` (plus retrieved demonstrations) and ``prc`` (everything).
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emoscope._io import write_json
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy
from emoscope.llm.base import ChatBackend, Generation
from emoscope.llm.parsing import parse_json_object, strip_thinking
from emoscope.recognizers.base import Target

__all__ = [
    "TEMPLATES",
    "VARIANTS",
    "CueGenerator",
    "Cues",
    "Demonstration",
    "PromptBuilder",
    "PromptTemplate",
    "load_template",
    "template_for",
]

VARIANTS = ("zero-shot", "few-shot", "prc")
TEMPLATES = ("meld", "emorynlp", "generic")
UNKNOWN_SPEAKER = "Speaker"
_NOT_AVAILABLE = "(not available)"

_REQUIRED: dict[str, tuple[str, ...]] = {
    "stage1": ("descriptions", "profile"),
    "final": (
        "role",
        "definitions",
        "context",
        "profile",
        "descriptions",
        "examples",
        "example",
        "labels",
    ),
    "questions": VARIANTS,
    "answers": (
        "single",
        "multi",
        "structured",
        "rationale_line",
        "answer_line",
        "confidence_line",
        "label_rule_single",
        "label_rule_multi",
    ),
    "variants": VARIANTS,
}


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed template file: named text pieces with ``${placeholders}``.

    Attributes:
        name: the template's name (``meld``, ``emorynlp``, ``generic`` or a file stem).
        source: where it was read from.
        sections: ``{table: {key: text}}`` as in the TOML file.
    """

    name: str
    source: str
    sections: Mapping[str, Mapping[str, Any]]

    def text(self, table: str, key: str) -> str:
        """The raw text of ``[table] key``."""
        return str(self.sections[table][key])

    def render(self, table: str, key: str, **values: Any) -> str:
        """``[table] key`` with its placeholders filled.

        Raises:
            EmoscopeError: a placeholder of the template has no value.
        """
        try:
            return string.Template(self.text(table, key)).substitute(
                {k: str(v) for k, v in values.items()}
            )
        except KeyError as e:
            raise EmoscopeError(
                f"prompt template {self.source}: [{table}] {key} uses the placeholder "
                f"${{{e.args[0]}}}; expected only: {', '.join(sorted(values))}"
            ) from None
        except ValueError as e:
            raise EmoscopeError(f"prompt template {self.source}: [{table}] {key}: {e}") from None

    def variant_sections(self, variant: str) -> list[str]:
        """The system-message sections of ``variant``, in order."""
        return [str(s) for s in self.sections["variants"][variant]]

    def fingerprint(self) -> str:
        """A short hash of the template's content (part of cache keys)."""
        blob = json.dumps(self.sections, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def read_toml_tables(
    text: str, source: str, required: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Parse a prompt-template TOML and check it has the ``required`` tables and keys."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EmoscopeError(f"prompt template {source}: not valid TOML: {e}") from None
    for table, keys in required.items():
        got = data.get(table)
        if not isinstance(got, dict):
            raise EmoscopeError(f"prompt template {source}: missing the [{table}] table")
        missing = [k for k in keys if k not in got]
        if missing:
            raise EmoscopeError(
                f"prompt template {source}: [{table}] lacks {', '.join(missing)}; expected "
                f"keys: {', '.join(keys)}"
            )
    return data


def _parse_template(text: str, name: str, source: str) -> PromptTemplate:
    data = read_toml_tables(text, source, _REQUIRED)
    known = set(_REQUIRED["final"])
    for variant in VARIANTS:
        sections = data["variants"][variant]
        bad = [s for s in sections if s not in known] if isinstance(sections, list) else [sections]
        if bad:
            raise EmoscopeError(
                f"prompt template {source}: [variants] {variant} names unknown sections {bad}; "
                f"expected a list of: {', '.join(sorted(known - {'example'}))}"
            )
    meta = data.get("meta") or {}
    return PromptTemplate(str(meta.get("name") or name), source, data)


def load_template(name_or_path: str | Path) -> PromptTemplate:
    """A template by built-in name (``meld``, ``emorynlp``, ``generic``) or TOML file path."""
    p = Path(name_or_path)
    if str(name_or_path) in TEMPLATES:
        res = resources.files("emoscope").joinpath(f"data/prompts/{name_or_path}.toml")
        return _parse_template(res.read_text("utf-8"), str(name_or_path), f"{name_or_path}.toml")
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise EmoscopeError(f"{p}: no such prompt template file")
        return _parse_template(p.read_text("utf-8"), p.stem, str(p))
    raise EmoscopeError(
        f"unknown prompt template {str(name_or_path)!r}; expected one of: "
        f"{', '.join(TEMPLATES)} or a path to a .toml file"
    )


def template_for(taxonomy: str | Taxonomy) -> PromptTemplate:
    """The built-in template of a taxonomy: its own when it has one, else ``generic``."""
    name = get_taxonomy(taxonomy).name
    return load_template(name if name in TEMPLATES else "generic")


@dataclass(frozen=True)
class Demonstration:
    """A retrieved example shown in the prompt: ``"text" → label (from source, distance)``."""

    text: str
    label: str
    source: str
    distance: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "text": self.text,
            "label": self.label,
            "source": self.source,
            "distance": self.distance,
        }


@dataclass(frozen=True)
class Cues:
    """Stage-1 outputs for one target utterance.

    Attributes:
        explicit: explicit emotion description (``None`` if not generated or unreadable).
        implicit: implicit emotion description.
        profile: profile of the target's speaker.
        failed: which stage-1 answers could not be parsed (``descriptions``, ``profile``).
        prompt_tokens: stage-1 prompt tokens spent on this target (a profile is charged to the
            first utterance of its speaker).
        completion_tokens: stage-1 tokens generated for this target.
    """

    explicit: str | None = None
    implicit: str | None = None
    profile: str | None = None
    failed: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "explicit_emotion": self.explicit,
            "implicit_emotion": self.implicit,
            "speaker_profile": self.profile,
            "stage1_failed": list(self.failed),
            "stage1_prompt_tokens": self.prompt_tokens,
            "stage1_completion_tokens": self.completion_tokens,
        }


def _speaker(u: Utterance) -> str:
    return u.speaker if u.speaker else UNKNOWN_SPEAKER


def _line(u: Utterance) -> str:
    return f"{_speaker(u)}: {' '.join(u.text.split())}"


def _fmt_distance(d: float) -> str:
    return f"{d:.2f}"


class PromptBuilder:
    """Renders the stage-1 and final prompts of one template, taxonomy and variant.

    Args:
        template: a :class:`PromptTemplate` (see :func:`load_template`).
        taxonomy: the labels the model must choose from.
        variant: ``zero-shot``, ``few-shot`` or ``prc``.
        window: preceding turns shown in the final prompt's context (5).
        future: following turns shown too (0; the PRC-Emo reference code shows 5 on each side,
            which reads ahead in the dialogue).
        cue_window: turns, ending with the target, given to the stage-1 descriptions prompt (5).
        confidence: ask for an EmoCaliber-style ``<confidence>`` tag.
        rationale: ask for a one-sentence ``<rationale>`` before the answer.
    """

    def __init__(
        self,
        template: PromptTemplate,
        taxonomy: str | Taxonomy,
        variant: str = "prc",
        *,
        window: int = 5,
        future: int = 0,
        cue_window: int = 5,
        confidence: bool = False,
        rationale: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise EmoscopeError(
                f"unknown prompt variant {variant!r}; expected one of: {', '.join(VARIANTS)}"
            )
        if window < 0 or future < 0 or cue_window < 1:
            raise EmoscopeError(
                f"window ({window}) and future ({future}) must be >= 0, cue_window ({cue_window}) "
                ">= 1"
            )
        self.template = template
        self.taxonomy = get_taxonomy(taxonomy)
        self.variant = variant
        self.window = window
        self.future = future
        self.cue_window = cue_window
        self.confidence = confidence
        self.rationale = rationale

    # -- stage 1 ----------------------------------------------------------------------------

    def _label_words(self) -> str:
        words = [lab for lab in self.taxonomy.labels if lab != self.taxonomy.neutral]
        return ", ".join(f"'{w}'" for w in words)

    def descriptions_messages(self, target: Target) -> list[dict[str, str]]:
        """Stage-1 prompt for the explicit/implicit emotion descriptions of ``target``."""
        if target.dialogue is None:
            turns = [target.utterance]
        else:
            start = max(0, target.index - self.cue_window + 1)
            turns = list(target.dialogue.utterances[start : target.index + 1])
        content = self.template.render(
            "stage1",
            "descriptions",
            context="\n".join(_line(u) for u in turns),
            speaker=_speaker(target.utterance),
            utterance=" ".join(target.text.split()),
            label_words=self._label_words(),
        )
        return [{"role": "user", "content": content}]

    def profile_messages(self, dialogue: Dialogue, speaker: str) -> list[dict[str, str]]:
        """Stage-1 prompt for the profile of ``speaker`` from the whole ``dialogue``."""
        content = self.template.render(
            "stage1",
            "profile",
            dialogue="\n".join(_line(u) for u in dialogue.utterances),
            speaker=speaker,
        )
        return [{"role": "user", "content": content}]

    # -- final prompt -----------------------------------------------------------------------

    def context_lines(self, target: Target) -> list[str]:
        """The context turns: ``window`` before the target, the target, ``future`` after it."""
        if target.dialogue is None:
            return [_line(target.utterance)]
        turns = target.dialogue.utterances
        start = max(0, target.index - self.window)
        return [_line(u) for u in turns[start : target.index + self.future + 1]]

    def answer_rule(self) -> str:
        """The instruction on how to answer (label only, or the structured EmoCaliber format)."""
        multi = self.taxonomy.multi_label
        if not (self.confidence or self.rationale):
            return self.template.text("answers", "multi" if multi else "single")
        rule = self.template.text("answers", "label_rule_multi" if multi else "label_rule_single")
        lines = []
        if self.rationale:
            lines.append(self.template.text("answers", "rationale_line"))
        lines.append(self.template.render("answers", "answer_line", label_rule=rule))
        if self.confidence:
            lines.append(self.template.text("answers", "confidence_line"))
        return self.template.render("answers", "structured", format="\n".join(lines))

    def _section(
        self, name: str, target: Target, cues: Cues, demos: Sequence[Demonstration]
    ) -> str | None:
        speaker = _speaker(target.utterance)
        utterance = " ".join(target.text.split())
        t = self.template
        if name == "role" or name == "definitions":
            return t.text("final", name)
        if name == "context":
            return t.render("final", "context", context="\n".join(self.context_lines(target)))
        if name == "profile":
            if target.utterance.speaker is None and cues.profile is None:
                return None
            return t.render(
                "final", "profile", speaker=speaker, profile=cues.profile or _NOT_AVAILABLE
            )
        if name == "descriptions":
            return t.render(
                "final",
                "descriptions",
                speaker=speaker,
                utterance=utterance,
                explicit=cues.explicit or _NOT_AVAILABLE,
                implicit=cues.implicit or _NOT_AVAILABLE,
            )
        if name == "examples":
            if not demos:
                return None
            lines = [
                t.render(
                    "final",
                    "example",
                    n=i,
                    text=" ".join(d.text.split()),
                    label=d.label,
                    source=d.source,
                    distance=_fmt_distance(d.distance),
                )
                for i, d in enumerate(demos, 1)
            ]
            return t.render("final", "examples", examples="\n".join(lines))
        if name == "labels":
            return t.render("final", "labels", labels=", ".join(self.taxonomy.labels))
        raise EmoscopeError(f"unknown prompt section {name!r}")

    def final_messages(
        self,
        target: Target,
        cues: Cues | None = None,
        demos: Sequence[Demonstration] = (),
        *,
        answer_rule: bool = True,
    ) -> list[dict[str, str]]:
        """The system + user messages asking for the label of ``target``.

        ``answer_rule=False`` leaves out the answer-format instruction (the fine-tuned setting of
        the paper, where the model learns to answer with the label alone).
        """
        cues = cues or Cues()
        sections = [
            self._section(name, target, cues, demos)
            for name in self.template.variant_sections(self.variant)
        ]
        system = "\n\n".join(s for s in sections if s)
        question = self.template.render(
            "questions",
            self.variant,
            speaker=_speaker(target.utterance),
            utterance=" ".join(target.text.split()),
        )
        user = f"{question}\n{self.answer_rule()}" if answer_rule else question
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------------
# Stage 1: generating and caching the cues
# ------------------------------------------------------------------------------------------


def _dialogue_of(target: Target) -> Dialogue:
    return target.dialogue if target.dialogue is not None else Dialogue([target.utterance])


@dataclass
class _DialogueCues:
    descriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


class CueGenerator:
    """Runs the stage-1 prompts and caches their results, one JSON file per dialogue.

    Args:
        backend: the LLM answering the stage-1 prompts (the paper used Qwen3-14B; any
            :class:`~emoscope.llm.base.ChatBackend` works).
        builder: renders the prompts.
        cache_dir: folder for the per-dialogue files (``None``: keep results in memory only).
        max_new_tokens: length limit of each stage-1 answer.
        temperature: sampling temperature (0: greedy).
        batch_size: prompts per ``backend.generate`` call.
        progress: called with ``(done, total)`` after each batch.
    """

    def __init__(
        self,
        backend: ChatBackend,
        builder: PromptBuilder,
        *,
        cache_dir: str | Path | None = None,
        max_new_tokens: int = 320,
        temperature: float = 0.0,
        batch_size: int = 16,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.backend = backend
        self.builder = builder
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self._memory: dict[str, _DialogueCues] = {}

    def _key(self, dialogue: Dialogue) -> str:
        blob = json.dumps(
            {
                "model": self.backend.model,
                "template": self.builder.template.fingerprint(),
                "taxonomy": self.builder.taxonomy.name,
                "cue_window": self.builder.cue_window,
                "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                "turns": [[u.speaker, u.text] for u in dialogue.utterances],
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]

    def _load(self, key: str) -> _DialogueCues:
        if key in self._memory:
            return self._memory[key]
        entry = _DialogueCues()
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.json"
            if path.is_file():
                try:
                    d = json.loads(path.read_text("utf-8"))
                    entry = _DialogueCues(dict(d["descriptions"]), dict(d["profiles"]))
                except (ValueError, KeyError, TypeError):
                    entry = _DialogueCues()  # unreadable: regenerate and overwrite
        self._memory[key] = entry
        return entry

    def _save(self, key: str) -> None:
        if self.cache_dir is None:
            return
        entry = self._memory[key]
        write_json(
            self.cache_dir / f"{key}.json",
            {"descriptions": entry.descriptions, "profiles": entry.profiles},
        )

    def _run(self, convs: list[list[dict[str, str]]]) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(convs), self.batch_size):
            out.extend(
                self.backend.generate(
                    convs[start : start + self.batch_size],
                    max_new_tokens=self.max_new_tokens,
                    temperature=self.temperature,
                )
            )
            if self.progress is not None:
                self.progress(len(out), len(convs))
        if len(out) != len(convs):
            raise EmoscopeError(f"backend returned {len(out)} answers for {len(convs)} prompts")
        return out

    def generate(self, targets: Sequence[Target]) -> list[Cues]:
        """The stage-1 cues of each target (generated where not cached), in order."""
        keys = [self._key(_dialogue_of(t)) for t in targets]
        jobs: list[tuple[str, str, str, list[dict[str, str]]]] = []  # (key, kind, slot, prompt)
        queued: set[tuple[str, str, str]] = set()
        for t, key in zip(targets, keys, strict=True):
            entry = self._load(key)
            slot = str(t.index if t.dialogue is not None else 0)
            if slot not in entry.descriptions and (key, "d", slot) not in queued:
                queued.add((key, "d", slot))
                jobs.append((key, "d", slot, self.builder.descriptions_messages(t)))
            spk = t.utterance.speaker
            if (
                spk
                and t.dialogue is not None
                and spk not in entry.profiles
                and (key, "p", spk) not in queued
            ):
                queued.add((key, "p", spk))
                jobs.append((key, "p", spk, self.builder.profile_messages(t.dialogue, spk)))
        if jobs:
            answers = self._run([j[3] for j in jobs])
            touched: set[str] = set()
            for (key, kind, slot, _), gen in zip(jobs, answers, strict=True):
                entry = self._memory[key]
                tokens = {
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                }
                if kind == "d":
                    parsed = parse_json_object(gen.text, ("ExplicitEmotion", "ImplicitEmotion"))
                    entry.descriptions[slot] = {
                        "explicit": None if parsed is None else parsed["ExplicitEmotion"],
                        "implicit": None if parsed is None else parsed["ImplicitEmotion"],
                        "ok": parsed is not None,
                        **tokens,
                    }
                else:
                    parsed = parse_json_object(gen.text, ("Profile",))
                    # As in the reference code, an answer that is not JSON is kept as plain text.
                    text = (
                        parsed["Profile"] if parsed else " ".join(strip_thinking(gen.text).split())
                    )
                    entry.profiles[slot] = {
                        "profile": text or None,
                        "ok": parsed is not None,
                        **tokens,
                    }
                touched.add(key)
            for key in touched:
                self._save(key)
        return self._collect(targets, keys)

    def _collect(self, targets: Sequence[Target], keys: Sequence[str]) -> list[Cues]:
        out: list[Cues] = []
        charged: set[tuple[str, str]] = set()
        for t, key in zip(targets, keys, strict=True):
            entry = self._memory[key]
            d = entry.descriptions[str(t.index if t.dialogue is not None else 0)]
            failed = [] if d.get("ok") else ["descriptions"]
            p_tokens, c_tokens = int(d.get("prompt_tokens", 0)), int(d.get("completion_tokens", 0))
            profile = None
            spk = t.utterance.speaker
            if spk and spk in entry.profiles:
                p = entry.profiles[spk]
                profile = p.get("profile")
                if not p.get("ok"):
                    failed.append("profile")
                if (key, spk) not in charged:
                    charged.add((key, spk))
                    p_tokens += int(p.get("prompt_tokens", 0))
                    c_tokens += int(p.get("completion_tokens", 0))
            out.append(
                Cues(
                    d.get("explicit"), d.get("implicit"), profile, tuple(failed), p_tokens, c_tokens
                )
            )
        return out
