"""One PRC-Emo prompt pipeline, shared by training (:mod:`emoscope.llm.sft`) and inference
(:mod:`emoscope.recognizers.llm`), so that the prompts a LoRA adapter is trained on and the
prompts it answers at test time are built by the same code.

PRC-Emo (Li et al., "Do LLMs Feel? Teaching Emotion Recognition with Prompts, Retrieval, and
Curriculum Learning", AAAI 2026) builds each final prompt from a template, stage-1 cues written
by an LLM (explicit/implicit descriptions and a speaker profile) and ``k`` retrieved
demonstrations. :class:`PRCPipeline` holds those parts; :func:`load_llm` routes the options of
the ``hf`` and ``openai`` backends, written once for the answering model and the cue model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy
from emoscope.llm.base import BACKENDS, ChatBackend, load_backend
from emoscope.llm.prompting import (
    CueGenerator,
    Cues,
    Demonstration,
    PromptBuilder,
    load_template,
    template_for,
)

if TYPE_CHECKING:
    from emoscope.recognizers.base import Target

__all__ = ["HF_OPTIONS", "OPENAI_OPTIONS", "PRCPipeline", "load_llm", "target_queries"]

#: Options each backend takes (besides the model and the response cache).
HF_OPTIONS = (
    "device",
    "dtype",
    "load_in_4bit",
    "adapter",
    "batch_size",
    "repetition_penalty",
    "bf16_autocast",
)
OPENAI_OPTIONS = ("base_url", "api_key", "concurrency", "timeout", "extra_body")


def load_llm(
    kind: str, model: str, options: Mapping[str, Any], *, cache: str | Path | None = None
) -> ChatBackend:
    """The ``kind`` backend (``hf`` or ``openai``) of ``model`` with the options it takes.

    ``options`` may hold the options of both backends; those of the other one are ignored, and
    so are unset (``None``) values, which keep the backend's defaults.
    """
    if kind not in BACKENDS:
        raise EmoscopeError(f"unknown LLM backend {kind!r}; expected one of: {', '.join(BACKENDS)}")
    names = HF_OPTIONS if kind == "hf" else OPENAI_OPTIONS
    chosen = {k: options[k] for k in names if options.get(k) is not None}
    return load_backend(kind, model, cache=cache, **chosen)


def target_queries(targets: Sequence[Target]) -> list[Any]:
    """Retrieval queries of targets read at inference: text, speaker and dialogue."""
    from emoscope.retrieval import Query

    return [
        Query(
            text=t.text,
            speaker=t.utterance.speaker,
            dialogue_id=None if t.dialogue is None else t.dialogue.id,
        )
        for t in targets
    ]


class PRCPipeline:
    """Template → prompt builder → stage-1 cues → retrieved demonstrations → final prompts.

    Args:
        builder: renders the stage-1 and final prompts (template, taxonomy, variant, windows).
        cues: writes the stage-1 cues (``prc`` variant); ``None`` shows none.
        k: demonstrations per prompt (0: no retrieval).
        store: the demonstration store, or a function returning it (called on first use).
    """

    def __init__(
        self,
        builder: PromptBuilder,
        *,
        cues: CueGenerator | None = None,
        k: int = 0,
        store: Any = None,
    ) -> None:
        if k < 0:
            raise EmoscopeError(f"retrieve must be >= 0, got {k}")
        self.builder = builder
        self.cues = cues
        self.k = k
        self._store = store

    @classmethod
    def create(
        cls,
        taxonomy: Taxonomy,
        variant: str,
        *,
        template: str | None = None,
        window: int = 5,
        future: int = 0,
        cue_window: int = 5,
        confidence: bool = False,
        rationale: bool = False,
        k: int = 0,
        store: Any = None,
        cue_llm: ChatBackend | None = None,
        cue_cache_dir: str | Path | None = None,
        cue_max_new_tokens: int = 320,
        temperature: float = 0.0,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> PRCPipeline:
        """The pipeline of a variant: the template by name or path (default: the taxonomy's
        own) and, for ``prc``, a cue generator over ``cue_llm``."""
        tmpl = load_template(template) if template else template_for(taxonomy)
        builder = PromptBuilder(
            tmpl,
            taxonomy,
            variant,
            window=window,
            future=future,
            cue_window=cue_window,
            confidence=confidence,
            rationale=rationale,
        )
        gen = None
        if variant == "prc":
            if cue_llm is None:
                raise EmoscopeError("the prc prompt needs an LLM for its stage-1 cues")
            gen = CueGenerator(
                cue_llm,
                builder,
                cache_dir=cue_cache_dir,
                max_new_tokens=cue_max_new_tokens,
                temperature=temperature,
                batch_size=batch_size,
                progress=progress,
            )
        return cls(builder, cues=gen, k=k, store=store)

    @property
    def store(self) -> Any:
        """The demonstration store (loaded on first use when given as a function)."""
        if callable(self._store):
            self._store = self._store()
        return self._store

    def demonstrations(self, queries: Sequence[Any]) -> list[list[Demonstration]]:
        """The ``k`` nearest demonstrations of each :class:`~emoscope.retrieval.Query` (a query
        that knows its own store item never gets it back)."""
        if self.k == 0 or not queries:
            return [[] for _ in queries]
        if self.store is None:
            raise EmoscopeError("retrieval needs a demonstration store")
        hits = self.store.search(list(queries), k=self.k)
        return [
            [
                Demonstration(h.text, h.label or "unlabelled", h.source, float(h.distance))
                for h in row
            ]
            for row in hits
        ]

    def prompts(
        self,
        targets: Sequence[Target],
        queries: Sequence[Any] | None = None,
        *,
        timing: dict[str, float] | None = None,
    ) -> tuple[list[list[dict[str, str]]], list[Cues], list[list[Demonstration]]]:
        """The final prompt of each target, with the cues and demonstrations it shows.

        ``queries`` are the retrieval queries of the targets (default: text, speaker and
        dialogue of each target); ``timing["stage1_seconds"]`` accumulates the stage-1 time.
        """
        t0 = time.perf_counter()
        cues = self.cues.generate(targets) if self.cues is not None else [Cues()] * len(targets)
        if timing is not None:
            timing["stage1_seconds"] = timing.get("stage1_seconds", 0.0) + (
                time.perf_counter() - t0
            )
        if queries is None:
            queries = target_queries(targets) if self.k > 0 else [None] * len(targets)
        demos = self.demonstrations(queries)
        messages = [
            self.builder.final_messages(t, c, d)
            for t, c, d in zip(targets, cues, demos, strict=True)
        ]
        return messages, cues, demos
