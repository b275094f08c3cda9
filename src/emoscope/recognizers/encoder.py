"""emoscope's offline default model: a fine-tuned MiniLM sentence encoder with emotion heads.

Architecture (hierarchical, so each utterance is encoded once however long the conversation):

1. **Utterance encoder** — all-MiniLM-L6-v2 (Wang et al., 2020, "MiniLM: Deep Self-Attention
   Distillation for Task-Agnostic Compression of Pre-Trained Transformers"; sentence-transformers
   release by Reimers & Gurevych, 2019). The lower ``n_frozen_layers`` stay as released; the
   upper layers are fine-tuned. Texts longer than the window are split into windows whose token
   vectors are mean-pooled together, so a target utterance is never cut.
2. **Context model** — a small causal transformer over the utterance vectors of a dialogue with
   speaker embeddings (speakers numbered by order of appearance) and turn positions, so the
   prediction for turn *i* reads turns ``≤ i`` only (as in hierarchical ERC models, e.g.
   HiTrans, Li et al., 2020). At most ``max_turns`` turns are read: older context is dropped from
   the left, with a warning.
3. **Heads** on ``[utterance vector; context vector]``: single-label softmax heads per
   conversation taxonomy (MELD, EmoryNLP), a multi-label sigmoid head (GoEmotions, thresholds
   tuned on dev) and a VAD regression head (EmoBank), each calibrated by temperature scaling
   (Guo et al., 2017, "On Calibration of Modern Neural Networks").

A saved model is a folder: ``config.json`` (base model, heads with labels, temperatures and
thresholds, training data, emoscope version) and ``model.safetensors`` holding only the trained
parameters in float16; the frozen part is reloaded from the base model.

This module holds the recogniser and its routing of heads; the network, its config and its file
format are :mod:`emoscope.recognizers.encoder_model` (their names are importable from here too).
"""

from __future__ import annotations

import math
import typing
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy, mapping_matrix
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Input, RecognizerMixin, Target, flatten_inputs, register

# The network and its file format live in encoder_model.
from emoscope.recognizers.encoder_model import (  # noqa: F401 - re-exported where they were
    CONTEXT_INPUTS,
    INT8_MIN_ENTRIES,
    ContextModel,
    EmotionEncoder,
    EncoderConfig,
    HeadConfig,
    _load_model,
    build_model,
    chunk_token_ids,
    decode_weights,
    encode_weights,
    fit_temperature,
    input_token_ids,
    load_backbone,
    pad_batch,
    plan_windows,
    pool_mask,
    save_model,
    storage_round,
    target_turns,
    temperature_nll,
)

__all__ = [
    "EncoderConfig",
    "EncoderRecognizer",
    "HeadConfig",
    "default_model_path",
    "route_head",
]

DEFAULT_MODEL_DIR = "data/default_model"
BACKENDS = ("auto", "torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8")


def default_model_path() -> Path:
    """The folder of the default model shipped inside the package."""
    return Path(str(resources.files("emoscope").joinpath(DEFAULT_MODEL_DIR)))


INPUT_KINDS = ("text", "turn")


def input_kind(target: Target) -> str:
    """``"text"`` for a standalone text, ``"turn"`` for an utterance of a dialogue."""
    return "text" if target.dialogue is None else "turn"


def route_head(
    config: EncoderConfig, taxonomy: str, kind: str
) -> tuple[HeadConfig, np.ndarray | None]:
    """The head answering ``taxonomy`` for inputs of ``kind``, and the matrix mapping its labels
    into ``taxonomy`` (``None`` when it is that taxonomy's own head).

    The one routing rule of emoscope (every front-end reaches it through
    :func:`emoscope._views.route`):

    1. a head trained on ``taxonomy`` itself answers, whatever the input kind;
    2. otherwise the head trained on inputs of that kind is mapped into ``taxonomy``: for a
       standalone text (``"text"``) the multi-label head (GoEmotions: single comments), for a
       dialogue turn (``"turn"``) the head of the model's default taxonomy (MELD: TV dialogue).
       A conversation head read on a single text carries MELD's 47% neutral prior into it
       (``benchmarks/results/cross_domain.json``).
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; expected one of {INPUT_KINDS}")
    label_heads = [h for h in config.heads if h.kind != "vad" and h.taxonomy]
    for h in label_heads:
        if h.taxonomy == taxonomy:
            return h, None
    source = None
    if kind == "text":
        source = next((h for h in label_heads if h.kind == "multi"), None)
    if source is None:
        source = next(h for h in label_heads if h.taxonomy == config.default_taxonomy)
    m, _ = mapping_matrix(get_taxonomy(source.taxonomy or ""), get_taxonomy(taxonomy))
    return source, m


def _reweight_neutral(p: np.ndarray, taxonomy: Taxonomy, weight: float) -> np.ndarray:
    """Rows of ``p`` with the neutral column multiplied by ``weight``, renormalised."""
    if taxonomy.neutral is None:
        return p
    q = p.copy()
    q[:, taxonomy.labels.index(taxonomy.neutral)] *= weight
    return q / q.sum(1, keepdims=True)


@register("default")
@register("encoder")
class EncoderRecognizer(RecognizerMixin):
    """Emotion recogniser over texts and conversations using emoscope's fine-tuned MiniLM.

    Args:
        path: a saved model folder; defaults to the model shipped with emoscope.
        taxonomy: the taxonomy of the output distribution; :func:`route_head` chooses the head
            for each input (that taxonomy's own head, else the head trained on the input's kind,
            mapped).
        neutral_prior: a multiplier on the neutral label's probability before renormalising
            (``1`` = as trained). The conversation heads carry MELD's ~47% neutral prior into
            every text; values below 1 correct for domains with fewer neutral texts (see
            ``docs/model_card.md`` for the measured effect). Not applied to sigmoid heads.
        batch_size: utterances per forward pass.
        backend: ``auto`` (default) is ``torch-bf16`` where the CPU has native bfloat16
            arithmetic (AVX512-BF16 or AMX) and ``torch`` (float32) elsewhere (see
            :mod:`emoscope.recognizers.precision`); ``torch-bf16`` runs the utterance encoder
            under bfloat16 autocast (its linear weights cast once); ``torch-int8`` with
            dynamically int8-quantised linear layers (torch's ``quantize_dynamic``); ``onnx``
            runs the utterance encoder in ONNX Runtime and
            ``onnx-int8`` does so with dynamically int8-quantised weights (see
            :mod:`emoscope.recognizers.encoder_onnx`).
    """

    name = "default"

    def __init__(
        self,
        path: str | Path | None = None,
        taxonomy: str | None = None,
        batch_size: int = 128,
        backend: str = "auto",
        *,
        neutral_prior: float = 1.0,
        model: EmotionEncoder | None = None,
        tokenizer: Any = None,
    ) -> None:
        if backend not in BACKENDS:
            raise EmoscopeError(
                f"unknown backend {backend!r}; expected one of: {', '.join(BACKENDS)}"
            )
        if model is None:
            folder = Path(path) if path is not None else default_model_path()
            model, tokenizer = _load_model(folder)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.batch_size = batch_size
        if backend == "auto":
            from emoscope.recognizers.precision import default_backend

            backend = default_backend()
        self.backend = backend
        self._taxonomy = get_taxonomy(taxonomy or self.config.default_taxonomy)
        try:  # registry options (``eval --neutral-prior 0.35``) arrive as strings
            prior = float(neutral_prior)
        except (TypeError, ValueError):
            prior = float("nan")
        if not (prior > 0 and math.isfinite(prior)):
            raise EmoscopeError(f"neutral_prior must be a positive number, got {neutral_prior!r}")
        self.neutral_prior = prior
        self._token_sums: Callable[..., tuple[torch.Tensor, torch.Tensor]]
        self._encoder_model = model
        if backend.startswith("onnx") and self.config.context_input != "vector":
            raise EmoscopeError(
                f"backend {backend!r} runs models with context_input 'vector' only; this model "
                f"has {self.config.context_input!r} (use backend 'torch' or 'torch-bf16')"
            )
        if backend == "torch":
            self._token_sums = self._torch_token_sums
        elif backend == "torch-bf16":
            from emoscope.recognizers.precision import bf16_autocast, bf16_linear_copy

            self._encoder_model = typing.cast(EmotionEncoder, bf16_linear_copy(model))
            self._token_sums = bf16_autocast(self._torch_token_sums)
        elif backend == "torch-int8":
            from emoscope.recognizers.precision import int8_linear_copy

            self._encoder_model = typing.cast(EmotionEncoder, int8_linear_copy(model))
            self._token_sums = self._torch_token_sums
        else:
            from emoscope.recognizers.encoder_onnx import OnnxTextEncoder

            self._token_sums = OnnxTextEncoder(model, quantize=backend == "onnx-int8").token_sums

    def _torch_token_sums(
        self, input_ids: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums and counts of the ``pooled`` tokens' states (default: every token of ``mask``)."""
        # float() is a no-op in float32 and keeps a bfloat16 run's token sums exact
        enc = self._encoder_model
        h = enc.upper(enc.lower(input_ids, mask), mask).float()
        m = (mask if pooled is None else pooled).to(h.dtype)[..., None]
        return (h * m).sum(1), m.sum(1)

    # -- introspection ----------------------------------------------------------------------
    @property
    def heads(self) -> list[str]:
        """Names of the model's heads."""
        return [h.name for h in self.config.heads]

    def _label_head(self, kind: str = "turn") -> tuple[HeadConfig, np.ndarray | None]:
        """The head serving the output taxonomy for inputs of ``kind`` (see :func:`route_head`)."""
        return route_head(self.config, self._taxonomy.name, kind)

    # -- prediction ---------------------------------------------------------------------------
    def _features(self, targets: Sequence[Target]) -> torch.Tensor:
        cfg = self.config
        plan = plan_windows(targets, cfg.max_turns, cfg.n_speakers)
        if plan.truncated:
            warnings.warn(
                f"{plan.truncated} utterance(s) have more than {cfg.max_turns - 1} turns of "
                f"context; the oldest context turns were dropped (targets are never cut)",
                stacklevel=3,
            )
        if cfg.context_input == "vector":
            vectors = self._encode([[(None, text)] for text in plan.texts])
        else:
            vectors = self._encode(target_turns(targets, plan))
        feats = [
            self.model.contextualise(
                vectors,
                plan.windows[i : i + 256],
                plan.speakers[i : i + 256],
                plan.outputs[i : i + 256],
            )
            for i in range(0, len(plan.windows), 256)
        ]
        return torch.cat(feats, 0)

    def _encode(self, turns: Sequence[Sequence[tuple[str | None, str]]]) -> torch.Tensor:
        """Utterance vectors of targets given as their turns (see :func:`input_token_ids`)."""
        tok = self.tokenizer
        chunks, owners, starts = input_token_ids(turns, tok, self.config)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        hidden = int(self.model.backbone.config.hidden_size)
        sums = torch.zeros(len(turns), hidden)
        counts = torch.zeros(len(turns), 1)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            input_ids, mask = pad_batch([chunks[i] for i in idx], tok.pad_token_id)
            if self.config.context_input == "vector":
                chunk_sums, chunk_counts = self._token_sums(input_ids, mask)
            else:
                pooled = pool_mask(mask, [starts[i] for i in idx])
                chunk_sums, chunk_counts = self._token_sums(input_ids, mask, pooled)
            own = torch.tensor([owners[i] for i in idx])
            sums.index_add_(0, own, chunk_sums)
            counts.index_add_(0, own, chunk_counts)
        return sums / counts.clamp_min(1.0)

    @torch.inference_mode()
    def _outputs(
        self, inputs: Sequence[Input]
    ) -> tuple[np.ndarray, np.ndarray, list[HeadConfig], torch.Tensor]:
        """Label probabilities, VAD, the head used (one row per utterance) and the features."""
        targets = flatten_inputs(inputs)
        if not targets:
            return np.zeros((0, len(self.labels))), np.zeros((0, 3)), [], torch.zeros(0, 0)
        feats = self._features(targets)
        kinds = [input_kind(t) for t in targets]
        probs = np.zeros((len(targets), len(self.labels)))
        used: list[HeadConfig] = [self.config.heads[0]] * len(targets)
        for kind in dict.fromkeys(kinds):
            rows = [i for i, k in enumerate(kinds) if k == kind]
            head, mapping = self._label_head(kind)
            p = head.probabilities(self.model.head_logits(feats[rows], head.name)).numpy()
            if mapping is not None:
                if head.sigmoid:  # renormalise independent probabilities before mapping
                    p = p / p.sum(1, keepdims=True)
                p = p @ mapping
            if self.neutral_prior != 1.0 and not (head.sigmoid and mapping is None):
                p = _reweight_neutral(p, self._taxonomy, self.neutral_prior)
            probs[rows] = p
            for i in rows:
                used[i] = head
        vad_head = next((h for h in self.config.heads if h.kind == "vad"), None)
        vad = (
            self.model.head_logits(feats, vad_head.name).clamp(-1, 1).numpy()
            if vad_head is not None
            else np.full((len(targets), 3), np.nan)
        )
        return probs.astype(np.float64), vad.astype(np.float64), used, feats

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        """Array ``(n_utterances, n_labels)`` of label probabilities (columns = :attr:`labels`)."""
        return self._outputs(inputs)[0]

    def predict_vad(self, inputs: Sequence[Input]) -> np.ndarray:
        """Array ``(n_utterances, 3)`` of valence, arousal, dominance on ``[-1, 1]``."""
        return self._outputs(inputs)[1]

    def predict(self, inputs: Sequence[Input]) -> list[EmotionPrediction]:
        """One :class:`EmotionPrediction` per text / per dialogue utterance, in input order."""
        return self.predict_with_features(inputs)[0]

    def predict_with_features(
        self, inputs: Sequence[Input]
    ) -> tuple[list[EmotionPrediction], np.ndarray]:
        """:meth:`predict` plus the contextual features the heads read (``(n, dim)`` array),
        from one forward pass."""
        probs, vad, heads, feats = self._outputs(inputs)
        notes = self._input_warnings(flatten_inputs(inputs))
        out = []
        for p, v, head, (language, warns) in zip(probs, vad, heads, notes, strict=True):
            multi = head.kind == "multi" and head.taxonomy == self._taxonomy.name
            labels: tuple[str, ...] = ()
            if multi:
                th = head.thresholds or [0.5] * len(p)
                on = [i for i in np.argsort(-p) if p[i] >= th[i]]
                labels = tuple(self.labels[i] for i in on) or (self.labels[int(np.argmax(p))],)
            out.append(
                EmotionPrediction.from_scores(
                    self.labels,
                    np.clip(p, 0.0, 1.0),
                    self._taxonomy.name,
                    labels=labels,
                    vad=None if np.isnan(v).any() else (float(v[0]), float(v[1]), float(v[2])),
                    multi_label=multi,
                    language=language,
                    warnings=warns,
                )
            )
        return out, feats.numpy().astype(np.float64)

    def _input_warnings(
        self, targets: Sequence[Target]
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """Detected language and warnings of each target (see :mod:`emoscope.language`)."""
        from emoscope.language import detect, input_warnings

        keep = self.config.max_turns - 1
        out = []
        for t in targets:
            found = detect(t.text)
            warns = input_warnings(t.text, found)
            if t.dialogue is not None and t.index > keep:
                warns.append(
                    f"context-truncated: turn {t.index} has {t.index} turns before it; the model "
                    f"read only the last {keep} of them"
                )
            out.append((found.language, tuple(warns)))
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (trained parameters, float16)."""
        return save_model(self.model, path)

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs: Any) -> EncoderRecognizer:
        """Load a saved model folder (default: the shipped model)."""
        return cls(path, **kwargs)
