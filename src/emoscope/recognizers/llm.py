"""The ``llm`` recogniser: PRC-Emo prompting and retrieval around any chat LLM.

Implements the inference side of PRC-Emo (Li et al., "Do LLMs Feel? Teaching Emotion
Recognition with Prompts, Retrieval, and Curriculum Learning", AAAI 2026; reference code
LiXinran6/PRC-Emo): for each utterance, stage-1 prompts produce explicit/implicit emotion
descriptions and a speaker profile (:class:`~emoscope.llm.prompting.CueGenerator`), the
demonstration store supplies the ``k`` most similar labelled utterances
(:mod:`emoscope.retrieval`), and the final prompt asks for one label of the taxonomy. A LoRA
adapter trained with ``emoscope llm-train`` (:mod:`emoscope.llm.sft`) is used like any model.

**Probabilities.** An LLM answer names a label, not a distribution, so ``probs`` is built from
the answer: without a verbalised confidence it is one-hot on the parsed label; with an
EmoCaliber-style ``<confidence>c</confidence>`` (``confidence=True``) the parsed label gets
``max(c, 1/K)`` and the other ``K − 1`` labels share the rest equally. Multi-label taxonomies
(GoEmotions) give each named label ``c`` (1 without confidence) and the others 0. When no label
can be read the prediction is the taxonomy's neutral label (its first label if it has none) with
a uniform distribution, and ``cues["parse_failed"]`` is ``True`` (counted by
:func:`emoscope.evaluate.evaluate`). ``vad`` is the probability-weighted mean of the labels' VAD
coordinates.

**Configuration.** Constructor arguments map one to one onto ``emoscope llm-eval`` options.
Arguments left unset fall back to environment variables, so that ``emoscope eval --recognizer
llm`` works without recogniser options: ``EMOSCOPE_LLM_BACKEND``, ``EMOSCOPE_LLM_MODEL``,
``EMOSCOPE_LLM_PROMPT``, ``EMOSCOPE_LLM_RETRIEVE``, ``EMOSCOPE_LLM_STORE``,
``EMOSCOPE_LLM_TAXONOMY``, ``EMOSCOPE_LLM_CACHE_DIR``. A model folder written by ``emoscope
llm-train`` also supplies its training prompt settings (variant, window, taxonomy, template).
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy
from emoscope.llm.base import ChatBackend, Generation, can_score
from emoscope.llm.parsing import ParsedAnswer, parse_answer
from emoscope.llm.pipeline import PRCPipeline, load_llm, target_queries
from emoscope.llm.prompting import VARIANTS, Cues, Demonstration
from emoscope.models import encode_prompt
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Input, RecognizerMixin, Target, flatten_inputs, register

if TYPE_CHECKING:
    from emoscope.llm.scoring import LabelCalibration

__all__ = [
    "SFT_CONFIG_FILE",
    "LLMRecognizer",
    "default_cache_dir",
    "llm_recognizer",
    "load_store",
    "prediction_from_answer",
]

SFT_CONFIG_FILE = "emoscope_sft.json"
_DATASET_TAXONOMIES = ("meld", "emorynlp", "goemotions")
_DEFAULT_K = 3


MODES = ("generate", "score")


def _load_calibration(spec: Any) -> Any:
    from emoscope.llm.scoring import LabelCalibration

    if spec is None or isinstance(spec, LabelCalibration):
        return spec
    path = Path(spec)
    try:
        return LabelCalibration.from_dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, KeyError) as e:
        raise EmoscopeError(f"{path}: not a label calibration file ({e})") from e


def default_cache_dir() -> Path:
    """``$EMOSCOPE_CACHE`` (default ``~/.cache/emoscope``) plus ``llm``; see
    :func:`emoscope.models.cache_dir`."""
    from emoscope.models import cache_dir

    return cache_dir("llm")


def _env(name: str) -> str | None:
    value = os.environ.get(f"EMOSCOPE_LLM_{name}")
    return value if value else None


def _read_sft_config(model: str) -> dict[str, Any]:
    path = Path(model) / SFT_CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text("utf-8"))
    except ValueError as e:
        raise EmoscopeError(f"{path}: not valid JSON ({e})") from None
    prompt = cfg.get("prompt") if isinstance(cfg, dict) else None
    return dict(prompt) if isinstance(prompt, dict) else {}


# Saved stores already loaded in this process, by folder and modification time: recognisers
# sharing a store (e.g. a re-created recogniser in the same session) share one copy and encoder.
_LOADED_STORES: dict[tuple[str, float], Any] = {}


def _load_saved_store(folder: Path) -> Any:
    from emoscope.retrieval import DemonstrationStore

    config = folder / "store.json"
    key = (str(folder.resolve()), config.stat().st_mtime if config.is_file() else -1.0)
    if key not in _LOADED_STORES:
        _LOADED_STORES[key] = DemonstrationStore.load(folder)
    return _LOADED_STORES[key]


def load_store(
    store: str | Path | None,
    taxonomy: Taxonomy,
    *,
    cache_dir: Path | None = None,
    data_root: str | Path | None = None,
) -> Any:
    """The demonstration store: loaded from ``store``, else built from the taxonomy's dataset.

    Without a path, the train split of the dataset named like the taxonomy (``meld``,
    ``emorynlp``, ``goemotions``) is embedded and saved under ``cache_dir/stores/`` for reuse.
    """
    if store is not None:
        return _load_saved_store(Path(store))
    if taxonomy.name not in _DATASET_TAXONOMIES:
        raise EmoscopeError(
            f"no demonstration store given and the {taxonomy.name} taxonomy has no training "
            "set to build one from; pass store=PATH (see 'emoscope retrieve build')"
        )
    from emoscope.datasets import load_dataset

    data = load_dataset(taxonomy.name, "train", root=data_root)
    folder = None
    if cache_dir is not None:
        tag = f"{taxonomy.name}-train-{len(data)}"
        folder = cache_dir / "stores" / tag
        if (folder / "store.json").is_file():
            return _load_saved_store(folder)
    from emoscope.retrieval import DemonstrationStore

    built = DemonstrationStore()
    built.add_dataset(data, source=f"{taxonomy.name}-train")
    if folder is not None:
        built.save(folder)
        _LOADED_STORES[(str(folder.resolve()), (folder / "store.json").stat().st_mtime)] = built
    return built


def prediction_from_answer(
    parsed: ParsedAnswer, taxonomy: Taxonomy, *, cues: dict[str, Any]
) -> EmotionPrediction:
    """Turn a parsed answer into an :class:`EmotionPrediction` (see the module docstring)."""
    k = len(taxonomy)
    labels = list(taxonomy.labels)
    failed = parsed.parse_failed
    c = parsed.confidence
    if failed:
        fallback = taxonomy.neutral or labels[0]
        order = [fallback] + [lab for lab in labels if lab != fallback]
        probs = dict.fromkeys(order, 1.0 / k)
        chosen: tuple[str, ...] = (fallback,)
        conf = 1.0 / k
    elif taxonomy.multi_label:
        value = 1.0 if c is None else c
        chosen = parsed.labels
        order = list(chosen) + [lab for lab in labels if lab not in chosen]
        probs = {lab: (value if lab in chosen else 0.0) for lab in order}
        conf = value
    else:
        top = parsed.labels[0]
        p_top = 1.0 if c is None else max(c, 1.0 / k)
        # min(): rounding must never lift another label above the named one.
        rest = min((1.0 - p_top) / (k - 1), p_top) if k > 1 else 0.0
        order = [top] + [lab for lab in labels if lab != top]
        probs = {lab: (p_top if lab == top else rest) for lab in order}
        chosen = (top,)
        conf = p_top if c is None else c
    total = sum(probs.values())
    vad = taxonomy.expected_vad(probs) if total > 0 else None
    return EmotionPrediction(
        probs=probs,
        taxonomy=taxonomy.name,
        labels=chosen,
        vad=vad,
        confidence=conf,
        rationale=parsed.rationale,
        cues=cues,
        multi_label=taxonomy.multi_label,
    )


class LLMRecognizer(RecognizerMixin):
    """Emotion recognition by prompting a chat LLM (PRC-Emo: prompts + retrieval).

    Args:
        backend: ``"hf"`` (local transformers model), ``"openai"`` (OpenAI-compatible server)
            or a ready :class:`~emoscope.llm.base.ChatBackend`.
        model: model folder, Hub id, LoRA adapter folder (``emoscope llm-train`` output) or
            server model name. Required (``EMOSCOPE_LLM_MODEL``).
        prompt: ``zero-shot``, ``few-shot`` or ``prc`` (default).
        retrieve: demonstrations per prompt (``k``); default 3 for ``few-shot`` and ``prc``, 0
            for ``zero-shot``; 0 turns retrieval off.
        store: a demonstration store folder; default: built from the taxonomy's training set
            (and cached).
        taxonomy: the labels to choose from (default ``meld``).
        template: prompt template name (``meld``, ``emorynlp``, ``generic``) or TOML path;
            default: the taxonomy's own.
        cache_dir: folder for the response cache, stage-1 cues and built stores (default
            :func:`default_cache_dir`); ``cache=False`` turns caching off.
        cache: whether to cache at all.
        batch_size: prompts per backend call.
        window: preceding turns in the final prompt (5); future: following turns (0).
        cue_window: turns given to the stage-1 descriptions prompt (5).
        confidence: ask for a verbalised ``<confidence>`` (EmoCaliber-style).
        rationale: ask for a one-sentence ``<rationale>``.
        max_new_tokens: answer length limit (default 48, 96 with rationale or confidence): small
            models often open with a phrase ("The emotion label that fits Rachel ...") before
            the label.
        cue_max_new_tokens: stage-1 answer length limit.
        temperature: 0 for greedy decoding.
        cue_backend, cue_model: a different LLM for the stage-1 prompts (the paper used
            Qwen3-14B); default: the same model (for a LoRA adapter: its base model).
        device, dtype, load_in_4bit, adapter: options of the ``hf`` backend.
        base_url, api_key, concurrency, timeout, extra_body: options of the ``openai`` backend
            (``extra_body`` adds JSON fields to every request, e.g. vLLM's
            ``{"chat_template_kwargs": {"enable_thinking": false}}`` for Qwen3).
        cue_base_url: server of an ``openai`` cue backend when it differs from ``base_url``.
        data_root: where the datasets are, to build a store on the fly.
        mode: ``generate`` (answer text, parsed) or ``score`` (each label's log-likelihood as
            the answer, normalised over the taxonomy: a full distribution, no parse failures;
            ``hf`` backend only).
        calibration: a :class:`~emoscope.llm.scoring.LabelCalibration` (or its JSON file) for
            ``score`` mode: contextual-calibration prior fitted on dev, then temperature.
        repetition_penalty, bf16_autocast: ``hf`` generation options (for answers and the
            stage-1 prompts).

    ``timing`` accumulates the wall time of the stage-1 prompts and of the final prompts.
    """

    def __init__(
        self,
        backend: str | ChatBackend | None = None,
        model: str | None = None,
        prompt: str | None = None,
        retrieve: int | None = None,
        store: str | None = None,
        taxonomy: str | None = None,
        *,
        template: str | None = None,
        cache_dir: str | Path | None = None,
        cache: bool = True,
        batch_size: int = 8,
        window: int | None = None,
        future: int | None = None,
        cue_window: int | None = None,
        confidence: bool = False,
        rationale: bool = False,
        max_new_tokens: int | None = None,
        cue_max_new_tokens: int = 320,
        temperature: float = 0.0,
        cue_backend: str | ChatBackend | None = None,
        cue_model: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        load_in_4bit: bool = False,
        adapter: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        extra_body: dict[str, Any] | None = None,
        cue_base_url: str | None = None,
        data_root: str | None = None,
        mode: str = "generate",
        calibration: LabelCalibration | str | Path | None = None,
        repetition_penalty: float = 1.0,
        bf16_autocast: bool = False,
    ) -> None:
        if mode == "score" and not isinstance(backend, str | None) and not can_score(backend):
            raise EmoscopeError("score mode needs a backend that scores labels (the hf backend)")
        if mode not in MODES:
            raise EmoscopeError(f"unknown mode {mode!r}; expected one of: {', '.join(MODES)}")
        self.mode = mode
        self.calibration = _load_calibration(calibration)
        self.timing = {"stage1_seconds": 0.0, "final_seconds": 0.0}
        backend = backend if backend is not None else (_env("BACKEND") or "hf")
        model = model if model is not None else _env("MODEL")
        if model is None and isinstance(backend, str):
            raise EmoscopeError(
                "the llm recogniser needs a model: pass model=... (CLI: --model) or set "
                "EMOSCOPE_LLM_MODEL to a model folder, Hub id or server model name"
            )
        trained = _read_sft_config(model) if model else {}
        prompt = prompt or _env("PROMPT") or trained.get("variant") or "prc"
        if prompt not in VARIANTS:
            raise EmoscopeError(
                f"unknown prompt variant {prompt!r}; expected one of: {', '.join(VARIANTS)}"
            )
        if retrieve is None and _env("RETRIEVE") is not None:
            try:
                retrieve = int(str(_env("RETRIEVE")))
            except ValueError:
                raise EmoscopeError(
                    f"EMOSCOPE_LLM_RETRIEVE={_env('RETRIEVE')!r} is not an integer"
                ) from None
        if retrieve is None:
            retrieve = int(trained.get("retrieve", _DEFAULT_K)) if prompt != "zero-shot" else 0
        if retrieve < 0:
            raise EmoscopeError(f"retrieve must be >= 0, got {retrieve}")
        if prompt == "zero-shot" and retrieve > 0:
            raise EmoscopeError(
                "the zero-shot prompt shows no demonstrations; use prompt 'few-shot' or 'prc' "
                "with retrieve > 0, or retrieve 0"
            )
        if prompt == "few-shot" and retrieve == 0:
            raise EmoscopeError("the few-shot prompt needs demonstrations: retrieve must be > 0")
        if batch_size < 1:
            raise EmoscopeError(f"batch_size must be at least 1, got {batch_size}")
        self._taxonomy = get_taxonomy(
            taxonomy or _env("TAXONOMY") or trained.get("taxonomy") or "meld"
        )
        self.variant = prompt
        self.k = retrieve
        self.batch_size = batch_size
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens or (96 if (confidence or rationale) else 48)
        self.data_root = data_root
        store = store or _env("STORE")
        cache_root = cache_dir or _env("CACHE_DIR")
        self.cache_dir = (
            (Path(cache_root) if cache_root else default_cache_dir()) if cache else None
        )
        response_cache = None if self.cache_dir is None else self.cache_dir / "responses.sqlite"

        hf_or_openai: dict[str, Any] = {
            "device": device,
            "dtype": dtype,
            "load_in_4bit": load_in_4bit,
            "adapter": adapter,
            "batch_size": batch_size,
            "repetition_penalty": repetition_penalty,
            "bf16_autocast": bf16_autocast,
            "base_url": base_url,
            "api_key": api_key,
            "concurrency": concurrency,
            "timeout": timeout,
            "extra_body": extra_body,
        }
        if isinstance(backend, str):
            assert model is not None
            self.backend: ChatBackend = load_llm(backend, model, hf_or_openai, cache=response_cache)
        else:
            self.backend = backend
        self.model = self.backend.model
        short = Path(str(model or self.model).rstrip("/")).name or "model"
        self.name = f"llm-{prompt}-{short}"

        cue_llm: ChatBackend | None = None
        if prompt == "prc":
            if cue_backend is None and cue_model is None:
                view = getattr(self.backend, "base_view", None)
                cue_llm = view() if callable(view) else self.backend
            elif isinstance(cue_backend, str) or cue_backend is None:
                kind = cue_backend or (backend if isinstance(backend, str) else "hf")
                cue_opts = dict(hf_or_openai, adapter=None, load_in_4bit=False)
                cue_opts["base_url"] = cue_base_url or base_url
                cue_llm = load_llm(kind, cue_model or str(model), cue_opts, cache=response_cache)
            else:
                cue_llm = cue_backend
        self.pipeline = PRCPipeline.create(
            self._taxonomy,
            prompt,
            template=template or trained.get("template"),
            window=window if window is not None else int(trained.get("window", 5)),
            future=future if future is not None else int(trained.get("future", 0)),
            cue_window=cue_window if cue_window is not None else int(trained.get("cue_window", 5)),
            confidence=confidence,
            rationale=rationale,
            k=retrieve,
            store=lambda: load_store(
                store, self._taxonomy, cache_dir=self.cache_dir, data_root=self.data_root
            ),
            cue_llm=cue_llm,
            cue_cache_dir=None if self.cache_dir is None else self.cache_dir / "cues",
            cue_max_new_tokens=cue_max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
        )
        self.builder = self.pipeline.builder
        self.cues = self.pipeline.cues

    @property
    def store(self) -> Any:
        """The demonstration store (loaded or built on first use)."""
        return self.pipeline.store

    def demonstrations(self, targets: Sequence[Target]) -> list[list[Demonstration]]:
        """The ``k`` retrieved demonstrations of each target (never the target itself)."""
        return self.pipeline.demonstrations(target_queries(targets))

    def build_prompts(
        self, targets: Sequence[Target]
    ) -> tuple[list[list[dict[str, str]]], list[Cues], list[list[Demonstration]]]:
        """The final prompt of each target, with the cues and demonstrations it shows."""
        return self.pipeline.prompts(targets, timing=self.timing)

    def predict(self, inputs: Sequence[Input]) -> list[EmotionPrediction]:
        """One prediction per text, and per utterance of each dialogue (read in context)."""
        targets = flatten_inputs(inputs)
        if not targets:
            return []
        prompts, cues, demos = self.build_prompts(targets)
        if self.mode == "score":
            return self._predict_scored(prompts, cues, demos)
        t0 = time.perf_counter()
        answers: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            answers.extend(
                self.backend.generate(
                    prompts[start : start + self.batch_size],
                    max_new_tokens=self.max_new_tokens,
                    temperature=self.temperature,
                )
            )
        if len(answers) != len(prompts):
            raise EmoscopeError(f"backend returned {len(answers)} answers for {len(prompts)}")
        self.timing["final_seconds"] += time.perf_counter() - t0
        out = []
        for t, gen, c, d in zip(targets, answers, cues, demos, strict=True):
            speakers = [u.speaker for u in (t.dialogue.utterances if t.dialogue else [t.utterance])]
            parsed = parse_answer(gen.text, self._taxonomy, ignore=[s for s in speakers if s])
            info: dict[str, Any] = {
                "prompt": self.variant,
                "model": self.model,
                "answer": gen.text,
                "parse_failed": parsed.parse_failed,
                "parse_method": parsed.method,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "cached": gen.cached,
                "examples": [x.to_dict() for x in d],
            }
            if self.cues is not None:
                info.update(c.to_dict())
            out.append(prediction_from_answer(parsed, self._taxonomy, cues=info))
        return out

    def _predict_scored(
        self,
        prompts: list[list[dict[str, str]]],
        cues: list[Cues],
        demos: list[list[Demonstration]],
    ) -> list[EmotionPrediction]:
        """Label scoring: a calibrated distribution from each label's log-likelihood."""
        if not can_score(self.backend):
            raise EmoscopeError("score mode needs a backend that scores labels (the hf backend)")
        scorer = cast(Any, self.backend).score
        from emoscope.llm.scoring import LabelCalibration

        labels = list(self._taxonomy.labels)
        t0 = time.perf_counter()
        scores = np.stack(scorer(prompts, labels))
        self.timing["final_seconds"] += time.perf_counter() - t0
        cal = self.calibration or LabelCalibration(tuple(labels))
        if list(cal.labels) != labels:
            raise EmoscopeError(f"the calibration is for labels {cal.labels}, not {labels}")
        probs = cal.probabilities(scores)
        tok = getattr(self.backend, "tokenizer", None)
        render = getattr(self.backend, "render", None)
        out = []
        for row, p, c, d, conv in zip(scores, probs, cues, demos, prompts, strict=True):
            n_prompt = len(encode_prompt(tok, render(conv))) if tok is not None and render else 0
            info: dict[str, Any] = {
                "prompt": self.variant,
                "model": self.model,
                "mode": "score",
                "parse_method": "score",
                "label_logprobs": dict(zip(labels, row.tolist(), strict=True)),
                "parse_failed": False,
                "prompt_tokens": n_prompt,
                "completion_tokens": 0,
                "examples": [x.to_dict() for x in d],
            }
            if self.cues is not None:
                info.update(c.to_dict())
            dist = {lab: float(v) for lab, v in zip(labels, p.tolist(), strict=True)}
            order = sorted(dist, key=lambda lab: -dist[lab])
            out.append(
                EmotionPrediction(
                    probs={lab: dist[lab] for lab in order},
                    taxonomy=self._taxonomy.name,
                    labels=(order[0],),
                    vad=self._taxonomy.expected_vad(dist),
                    confidence=dist[order[0]],
                    cues=info,
                )
            )
        return out


_INT_OPTIONS = frozenset(
    {"retrieve", "batch_size", "window", "future", "cue_window", "max_new_tokens"}
    | {"cue_max_new_tokens", "concurrency"}
)
_FLOAT_OPTIONS = frozenset({"temperature", "timeout", "repetition_penalty"})
_BOOL_OPTIONS = frozenset({"cache", "confidence", "rationale", "load_in_4bit", "bf16_autocast"})
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _coerce(name: str, value: str) -> Any:
    flag = "--" + name.replace("_", "-")
    try:
        if name in _INT_OPTIONS:
            return int(value)
        if name in _FLOAT_OPTIONS:
            return float(value)
    except ValueError:
        kind = "an integer" if name in _INT_OPTIONS else "a number"
        raise EmoscopeError(f"{flag}: expected {kind}, got {value!r}") from None
    if name in _BOOL_OPTIONS:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise EmoscopeError(f"{flag}: expected true or false, got {value!r}")
    if name == "extra_body":
        try:
            body = json.loads(value)
        except ValueError as e:
            raise EmoscopeError(f"{flag}: not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise EmoscopeError(f"{flag}: expected a JSON object, e.g. '{{\"top_p\": 1}}'")
        return body
    return value


@register("llm")
def llm_recognizer(**options: Any) -> LLMRecognizer:
    """The ``"llm"`` registry entry: :class:`LLMRecognizer` from options that may be strings.

    Command lines hand recogniser options over as text (``--retrieve 3`` gives ``retrieve="3"``);
    string values of numeric, boolean and JSON options are converted here, other values pass
    through unchanged.

    Raises:
        EmoscopeError: an unknown option or a value that does not convert.
    """
    known = list(inspect.signature(LLMRecognizer).parameters)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise EmoscopeError(
            f"unknown llm recogniser option(s): {', '.join(unknown)}; expected some of: "
            f"{', '.join(known)}"
        )
    return LLMRecognizer(
        **{k: _coerce(k, v) if isinstance(v, str) else v for k, v in options.items()}
    )
