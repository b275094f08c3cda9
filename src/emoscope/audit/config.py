"""What an audit runs: its sections, the sizes of each (``quick`` and ``default``) and the
choice of sections from ``--only`` / ``--skip``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from emoscope.errors import EmoscopeError

__all__ = [
    "SECTIONS",
    "SIZES",
    "AuditConfig",
    "AuditSizes",
    "select_sections",
]

#: The sections of the report, in order.
SECTIONS = ("recognition", "benchmarks", "stimuli", "probes", "steering")
#: Sections that read or change the weights (skipped for black-box models).
WEIGHT_SECTIONS = frozenset({"probes", "steering"})
# The sizes each section depends on (its cache key); the judge matters to steering only.
_SECTION_SIZES = {
    "recognition": ("meld_limit", "retrieve", "cue_max_new_tokens"),
    "benchmarks": ("emobench_limit", "eqbench_limit"),
    "stimuli": ("stimuli", "stimuli_tasks", "stimuli_items"),
    "probes": ("probe_train", "probe_test", "probe_control"),
    "steering": (
        "steer_emotions", "steer_prompts", "steer_alphas", "steer_max_new_tokens",
        "sev_scenarios",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class AuditSizes:
    """How much of each section runs. ``None`` means every item.

    Attributes:
        meld_limit: MELD test utterances read by the recogniser (whole dialogues, see
            :meth:`emoscope.datasets.base.Dataset.limit`).
        retrieve: demonstrations per PRC prompt (0: the cue prompt without retrieval).
        cue_max_new_tokens: length limit of the stage-1 cue answers.
        emobench_limit: EmoBench EU and EA items each (English).
        eqbench_limit: EQ-Bench v2 questions.
        stimuli: the stimulus selection (:func:`emoscope.stimuli.load_stimuli`).
        stimuli_tasks: tasks of the A/B table (``emotion``, ``emobench-eu``, ``emobench-ea``).
        stimuli_items: items per A/B task.
        probe_train, probe_test: texts of the probe data (GoEmotions mapped to Ekman).
        probe_control: also probe the randomly initialised control.
        steer_emotions: emotions steered towards.
        steer_prompts: neutral prompts per emotion and alpha.
        steer_alphas: strengths (0 is the unsteered baseline).
        steer_max_new_tokens: reply length limit.
        sev_scenarios: SEV scenarios the directions are built from (when the data is there).
    """

    meld_limit: int | None = 60
    retrieve: int = 3
    cue_max_new_tokens: int = 160
    emobench_limit: int | None = 100
    eqbench_limit: int | None = 40
    stimuli: str = "emotionprompt,negativeprompt"
    stimuli_tasks: tuple[str, ...] = ("emotion", "emobench-eu", "emobench-ea")
    stimuli_items: int | None = 30
    probe_train: int = 1000
    probe_test: int = 300
    probe_control: bool = True
    steer_emotions: tuple[str, ...] = ("anger", "sadness", "joy", "fear", "surprise", "disgust")
    steer_prompts: int = 10
    steer_alphas: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    steer_max_new_tokens: int = 60
    sev_scenarios: int = 40


#: ``quick`` is small; ``default`` is larger. Measured for SmolLM2-135M on the shared 2-core
#: machine: ``quick`` took 61 min wall / 1,515 s CPU (README, Audit), above its 10-minute aim.
SIZES: dict[str, AuditSizes] = {
    "default": AuditSizes(),
    "quick": AuditSizes(
        meld_limit=10,
        retrieve=0,
        cue_max_new_tokens=96,
        emobench_limit=12,
        eqbench_limit=3,
        stimuli_tasks=("emotion",),
        stimuli_items=6,
        probe_train=300,
        probe_test=150,
        steer_emotions=("anger", "sadness", "joy"),
        steer_prompts=4,
        steer_alphas=(0.0, 2.0, 4.0),
        steer_max_new_tokens=32,
        sev_scenarios=8,
    ),
}


def select_sections(
    only: str | Sequence[str] | None = None, skip: str | Sequence[str] | None = None
) -> tuple[str, ...]:
    """The sections to run: ``only`` (default all) minus ``skip``, in report order.

    Both take names or comma-separated lists.

    Raises:
        EmoscopeError: an unknown section name, or nothing left to run.
    """

    def names(value: str | Sequence[str] | None, flag: str) -> list[str]:
        if value is None:
            return []
        parts = [value] if isinstance(value, str) else list(value)
        out = [p.strip().lower() for item in parts for p in item.split(",") if p.strip()]
        unknown = [n for n in out if n not in SECTIONS]
        if unknown:
            raise EmoscopeError(
                f"{flag}: unknown section(s) {', '.join(unknown)}; expected some of: "
                f"{', '.join(SECTIONS)}"
            )
        return out

    chosen = set(names(only, "--only")) or set(SECTIONS)
    chosen -= set(names(skip, "--skip"))
    if not chosen:
        raise EmoscopeError("--only/--skip leave no section to run")
    return tuple(s for s in SECTIONS if s in chosen)


@dataclass(frozen=True)
class AuditConfig:
    """Everything an audit depends on besides the model.

    Attributes:
        size: ``quick`` or ``default`` (:data:`SIZES`).
        sizes: the sizes themselves (default: those of ``size``).
        sections: sections to run (:func:`select_sections`).
        data_root: where the datasets are (default: emoscope's data root).
        meld_limit: overrides ``sizes.meld_limit`` (``--limit``).
        seed: random seed (probes, steering).
        bf16: bfloat16 autocast for the hf backend's scoring and generation; ``None`` (default):
            where the CPU has native bf16 (:func:`emoscope.recognizers.precision.resolve_bf16`),
            resolved when the config is made.
        judge: recogniser judging steered replies (default: emoscope's default recogniser).
    """

    size: str = "default"
    sizes: AuditSizes | None = None
    sections: tuple[str, ...] = SECTIONS
    data_root: str | None = None
    meld_limit: int | None = None
    seed: int = 0
    bf16: bool | None = None
    judge: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bf16 is None:
            from emoscope.recognizers.precision import resolve_bf16

            object.__setattr__(self, "bf16", resolve_bf16(None))
        if self.size not in SIZES:
            raise EmoscopeError(f"unknown size {self.size!r}; expected one of: {', '.join(SIZES)}")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise EmoscopeError(f"unknown section(s): {', '.join(unknown)}")

    @property
    def resolved_sizes(self) -> AuditSizes:
        """The sizes in force, ``--limit`` applied."""
        sizes = self.sizes or SIZES[self.size]
        if self.meld_limit is not None:
            sizes = replace(sizes, meld_limit=self.meld_limit)
        return sizes

    def section_key(self, section: str, model: str) -> str:
        """A digest of what ``section`` depends on, naming its cache entry: a cached section
        is reused only for the same model, sizes, seed and settings."""
        sizes = asdict(self.resolved_sizes)
        payload = {
            "section": section,
            "model": model,
            "sizes": {k: sizes[k] for k in _SECTION_SIZES[section]},
            "data_root": self.data_root,
            "seed": self.seed,
            "bf16": self.bf16,
            "judge": self.judge if section == "steering" else None,
            "extra": self.extra,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
