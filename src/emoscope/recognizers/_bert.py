"""An inference-only BERT encoder in plain PyTorch, for loading emoscope models quickly.

BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding") is a post-LayerNorm Transformer encoder (Vaswani et al., 2017). This module
implements its embeddings and encoder layers with the same parameter names as ``transformers``'
``BertModel``, so the same state dicts load, and wraps the ``tokenizers`` WordPiece tokenizer of a
model folder. It exists because importing ``transformers``' modeling code costs seconds on a small
machine, which dominated the start-up of ``emoscope analyze``; training and any architecture this
module does not cover go through ``transformers`` (see
:func:`emoscope.recognizers.encoder.load_backbone`).

:func:`load_bert` returns ``None`` for any folder it cannot reproduce exactly (another
architecture, another activation, relative positions, non-float32 or legacy-named weights), and the
caller then falls back to ``transformers``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BertBackbone", "BertSettings", "BertTokenizer", "load_bert"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # transformers' "gelu" is the exact (erf) GELU
    "relu": F.relu,
}


class _Linear(nn.Linear):
    """``nn.Linear`` left uninitialised: :func:`load_bert` assigns every parameter."""

    def reset_parameters(self) -> None:
        """Skip the random initialisation (a meta-device build would import torch._dynamo)."""


class _Embedding(nn.Embedding):
    """``nn.Embedding`` left uninitialised (see :class:`_Linear`)."""

    def reset_parameters(self) -> None:
        """Skip the random initialisation."""


class _LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` left uninitialised (see :class:`_Linear`)."""

    def reset_parameters(self) -> None:
        """Skip the initialisation."""


@dataclass(frozen=True)
class BertSettings:
    """The hyper-parameters of a BERT ``config.json`` that the forward pass depends on."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BertSettings | None:
        """Settings of a ``transformers`` BERT config dict; ``None`` if this module can't run it."""
        supported = (
            config.get("model_type") == "bert"
            and config.get("hidden_act", "gelu") in _ACTIVATIONS
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder", False)
            and not config.get("add_cross_attention", False)
        )
        if not supported:
            return None
        try:
            s = cls(
                vocab_size=int(config["vocab_size"]),
                hidden_size=int(config["hidden_size"]),
                num_hidden_layers=int(config["num_hidden_layers"]),
                num_attention_heads=int(config["num_attention_heads"]),
                intermediate_size=int(config["intermediate_size"]),
                max_position_embeddings=int(config["max_position_embeddings"]),
                type_vocab_size=int(config.get("type_vocab_size", 2)),
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
                hidden_act=str(config.get("hidden_act", "gelu")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return s if s.hidden_size % s.num_attention_heads == 0 else None


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(s.vocab_size, s.hidden_size)
        self.position_embeddings = _Embedding(s.max_position_embeddings, s.hidden_size)
        self.token_type_embeddings = _Embedding(s.type_vocab_size, s.hidden_size)
        self.LayerNorm = _LayerNorm(s.hidden_size, eps=s.layer_norm_eps)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``input_ids`` (B, T) → embeddings (B, T, H); token types default to 0."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        h = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        h = h + self.position_embeddings(positions)
        out: torch.Tensor = self.LayerNorm(h)
        return out


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention projections."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.heads = s.num_attention_heads
        self.query = _Linear(s.hidden_size, s.hidden_size)
        self.key = _Linear(s.hidden_size, s.hidden_size)
        self.value = _Linear(s.hidden_size, s.hidden_size)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """``attention_mask`` is additive, broadcastable to (B, heads, T, T)."""
        b, t, _ = h.shape
        q, k, v = (
            proj(h).view(b, t, self.heads, -1).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        return out.transpose(1, 2).reshape(b, t, -1)


class BertSelfOutput(nn.Module):
    """Output projection of the attention block, residual, LayerNorm."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.dense = _Linear(s.hidden_size, s.hidden_size)
        self.LayerNorm = _LayerNorm(s.hidden_size, eps=s.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(dense(h) + residual)``."""
        out: torch.Tensor = self.LayerNorm(self.dense(h) + residual)
        return out


class BertAttention(nn.Module):
    """Self-attention followed by its output block."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.self = BertSelfAttention(s)
        self.output = BertSelfOutput(s)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The attention sub-layer of one BERT layer."""
        out: torch.Tensor = self.output(self.self(h, attention_mask), h)
        return out


class BertIntermediate(nn.Module):
    """First feed-forward projection and activation."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.dense = _Linear(s.hidden_size, s.intermediate_size)
        self.act = _ACTIVATIONS[s.hidden_act]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``act(dense(h))``."""
        return self.act(self.dense(h))


class BertOutput(nn.Module):
    """Second feed-forward projection, residual, LayerNorm."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.dense = _Linear(s.intermediate_size, s.hidden_size)
        self.LayerNorm = _LayerNorm(s.hidden_size, eps=s.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(dense(h) + residual)``."""
        out: torch.Tensor = self.LayerNorm(self.dense(h) + residual)
        return out


class BertLayer(nn.Module):
    """One post-LayerNorm Transformer encoder layer."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.attention = BertAttention(s)
        self.intermediate = BertIntermediate(s)
        self.output = BertOutput(s)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``hidden_states`` (B, T, H); ``attention_mask`` additive, e.g. (B, 1, 1, T)."""
        a = self.attention(hidden_states, attention_mask)
        out: torch.Tensor = self.output(self.intermediate(a), a)
        return out


class BertEncoder(nn.Module):
    """The stack of layers (``encoder.layer[i]`` as in ``transformers``)."""

    def __init__(self, s: BertSettings) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(s) for _ in range(s.num_hidden_layers))


class BertBackbone(nn.Module):
    """A BERT encoder without pooler, with ``transformers``' ``BertModel`` parameter names.

    Inference only: it has no dropout. ``config`` carries the settings (``config.hidden_size``
    is what :class:`~emoscope.recognizers.encoder.EmotionEncoder` reads).
    """

    def __init__(self, settings: BertSettings) -> None:
        super().__init__()
        self.config = settings
        self.embeddings = BertEmbeddings(settings)
        self.encoder = BertEncoder(settings)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, H) for ``input_ids`` with a 0/1 ``attention_mask``."""
        h = self.embeddings(input_ids)
        ext = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.encoder.layer:
            h = layer(h, ext)
        return h


class BertTokenizer:
    """A ``tokenizers`` tokenizer with the slice of the ``transformers`` API emoscope uses.

    Calling it on a list of texts returns ``{"input_ids": [[...], ...]}``, never truncated or
    padded; ``cls_token_id``, ``sep_token_id`` and ``pad_token_id`` give the special tokens.
    """

    def __init__(self, tokenizer: Any, cls_token_id: int, sep_token_id: int, pad_token_id: int):
        self._tok = tokenizer
        self.cls_token_id = cls_token_id
        self.sep_token_id = sep_token_id
        self.pad_token_id = pad_token_id

    def __call__(
        self, texts: str | Sequence[str], add_special_tokens: bool = True
    ) -> dict[str, Any]:
        """Token ids of one text or of a batch of texts."""
        if isinstance(texts, str):
            ids: Any = self._tok.encode(texts, add_special_tokens=add_special_tokens).ids
        else:
            batch = self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
            ids = [e.ids for e in batch]
        return {"input_ids": ids}

    @classmethod
    def from_folder(cls, folder: Path) -> BertTokenizer | None:
        """The tokenizer of a model folder with ``tokenizer.json``, or ``None``."""
        path = folder / "tokenizer.json"
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        # A saved tokenizer.json may carry fixed padding/truncation (all-MiniLM-L6-v2's pads to
        # 128); transformers turns them off for unpadded calls and so must we.
        tok.no_truncation()
        tok.no_padding()
        names = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
        for extra in ("special_tokens_map.json", "tokenizer_config.json"):
            if (folder / extra).is_file():
                cfg = json.loads((folder / extra).read_text("utf-8"))
                for key in names:
                    value = cfg.get(key)
                    value = value.get("content") if isinstance(value, dict) else value
                    if isinstance(value, str):
                        names[key] = value
                break
        cls_id, sep_id, pad_id = (tok.token_to_id(name) for name in names.values())
        if cls_id is None or sep_id is None or pad_id is None:
            return None
        return cls(tok, cls_id, sep_id, pad_id)


def load_bert(folder: str | Path) -> tuple[BertBackbone, BertTokenizer] | None:
    """The backbone (in eval mode) and tokenizer of a BERT model folder, or ``None`` when the
    folder is not a float32 ``BertModel`` with ``config.json``, ``model.safetensors`` and
    ``tokenizer.json`` that this module reproduces exactly."""
    folder = Path(folder)
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        return None
    try:
        settings = BertSettings.from_config(json.loads(cfg_path.read_text("utf-8")))
    except ValueError:
        return None
    tokenizer = BertTokenizer.from_folder(folder) if settings is not None else None
    if settings is None or tokenizer is None:
        return None
    from safetensors.torch import load_file

    backbone = BertBackbone(settings)  # uninitialised: every parameter is assigned below
    names = set(backbone.state_dict())
    state = {}
    for key, tensor in load_file(str(weights)).items():
        name = key.removeprefix("bert.")
        if name in names:
            state[name] = tensor
    if set(state) != names or any(t.dtype != torch.float32 for t in state.values()):
        return None
    try:
        backbone.load_state_dict(state, strict=True, assign=True)
    except RuntimeError:  # shapes disagree with config.json: let transformers report it
        return None
    return backbone.eval(), tokenizer
