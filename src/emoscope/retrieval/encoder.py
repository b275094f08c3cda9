"""Sentence embeddings for retrieval: mean pooling over the tokens of a transformers encoder,
L2-normalised, exactly what the sentence-transformers pipeline of all-MiniLM-L6-v2 does (Wang et
al., 2020; sentence-transformers release by Reimers & Gurevych, 2019)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model
from emoscope.errors import EmoscopeError

__all__ = ["Progress", "SentenceEncoder"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each batch."""

_DEFAULT_MAX_SEQ_LENGTH = 256


class SentenceEncoder:
    """Sentence embeddings: mean pooling over tokens of a transformers encoder, L2-normalised.

    Args:
        model: a local model folder or Hub id; ``None`` resolves all-MiniLM-L6-v2 through
            :func:`~emoscope.base_model.resolve_base_model` (the offline package when installed).
        max_seq_length: token limit per text; defaults to the model's
            ``sentence_bert_config.json`` value, else 256 (capped by the position embeddings).
        batch_size: texts per forward pass.

    Raises:
        EmoscopeError: the model cannot be loaded.
    """

    def __init__(
        self, model: str | None = None, *, max_seq_length: int | None = None, batch_size: int = 64
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        resolved = resolve_base_model(model)
        if model:
            self.name = model
        elif resolved.source in ("offline-package", "hub"):
            self.name = DEFAULT_BASE_MODEL
        else:
            self.name = resolved.location
        self.location = resolved.location
        hf_logging.set_verbosity_error()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI query
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(resolved.location)
            self._model = AutoModel.from_pretrained(resolved.location)
        except (OSError, ValueError) as e:
            raise EmoscopeError(
                f"cannot load sentence encoder {resolved.location!r} (from {resolved.source}): "
                f"{e}. Offline, install the default one with: pip install 'emoscope[offline]'"
            ) from e
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self._model.eval()
        self._torch = torch
        self.dim = int(self._model.config.hidden_size)
        limit = getattr(self._model.config, "max_position_embeddings", None) or 512
        self.max_seq_length = min(max_seq_length or self._configured_length(), int(limit))
        self.batch_size = batch_size

    def _configured_length(self) -> int:
        cfg = Path(self.location) / "sentence_bert_config.json"
        if cfg.is_file():
            with contextlib.suppress(ValueError, OSError):
                value = json.loads(cfg.read_text("utf-8")).get("max_seq_length")
                if isinstance(value, int) and value > 0:
                    return value
        return _DEFAULT_MAX_SEQ_LENGTH

    def describe(self) -> dict[str, Any]:
        """Name, location, dimension, pooling and token limit (recorded in saved stores)."""
        return {
            "name": self.name,
            "location": self.location,
            "dim": self.dim,
            "pooling": "mean",
            "normalized": True,
            "max_seq_length": self.max_seq_length,
        }

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Unit-length embeddings of ``texts``, shape ``(len(texts), dim)``, float32.

        Texts are batched by length (then restored to input order) to limit padding;
        ``progress(done, total)`` is called after each batch.
        """
        torch = self._torch
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        size = batch_size or self.batch_size
        order = sorted(range(n), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, n, size):
                idx = order[start : start + size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
                if progress is not None:
                    progress(min(start + size, n), n)
        return out
