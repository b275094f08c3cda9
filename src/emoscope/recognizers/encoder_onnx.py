"""ONNX Runtime execution of the encoder model's utterance encoder, optionally int8-quantised.

The transformer part of :class:`~emoscope.recognizers.encoder.EmotionEncoder` (embeddings, all
layers, masked token sums) is exported to ONNX and run by ``onnxruntime``; the small dialogue
context model and the heads stay in PyTorch. ``quantize=True`` applies ONNX Runtime's dynamic
int8 quantisation of the weights (activations quantised on the fly), as in
``onnxruntime.quantization.quantize_dynamic``.

Exported files are cached in ``$EMOSCOPE_CACHE`` (default ``~/.cache/emoscope``) under a key
made from the model's weights, so a model is exported once per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoscope.errors import EmoscopeError

__all__ = ["OnnxTextEncoder", "cache_dir"]


def cache_dir() -> Path:
    """Where exported ONNX files are kept (:func:`emoscope.models.cache_dir`)."""
    from emoscope.models import cache_dir as root

    return root()


class _TokenSums(nn.Module):
    """Backbone forward returning masked token sums and token counts per chunk."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.model.upper(self.model.lower(input_ids, attention_mask), attention_mask)
        m = attention_mask.to(h.dtype)[..., None]
        return (h * m).sum(1), m.sum(1)


def _fingerprint(model: nn.Module, quantize: bool) -> str:
    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        if name.startswith(("backbone.", "heads.", "context.")):
            digest.update(name.encode())
            digest.update(p.detach().to(torch.float32).numpy().tobytes()[:4096])
            digest.update(str(tuple(p.shape)).encode())
    digest.update(b"int8" if quantize else b"fp32")
    return digest.hexdigest()[:16]


def _export(model: Any, path: Path) -> None:
    wrapper = _TokenSums(model).eval()
    # Small ids so that the trace input fits any vocabulary (tests use tiny ones).
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (ids, mask),
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["sums", "counts"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "sums": {0: "batch"},
                    "counts": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=dst.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(src), tmp, weight_type=QuantType.QInt8)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class OnnxTextEncoder:
    """Runs the exported utterance encoder with ``onnxruntime`` (CPU).

    Args:
        model: the :class:`~emoscope.recognizers.encoder.EmotionEncoder` to export.
        quantize: apply dynamic int8 quantisation.
        threads: intra-op threads for onnxruntime (default: torch's thread count).
    """

    def __init__(self, model: Any, quantize: bool = False, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise EmoscopeError(
                "the ONNX backend needs onnxruntime: pip install 'emoscope[onnx]'"
            ) from e
        key = _fingerprint(model, quantize)
        folder = cache_dir() / "onnx"
        fp32 = folder / f"encoder-{_fingerprint(model, False)}.onnx"
        path = folder / f"encoder-{key}.onnx"
        if not fp32.exists():
            _export(model, fp32)
        if quantize and not path.exists():
            _quantize(fp32, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def token_sums(
        self, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked token sums ``(B, H)`` and token counts ``(B, 1)`` for a padded batch."""
        sums, counts = self.session.run(
            None,
            {
                "input_ids": input_ids.numpy().astype(np.int64),
                "attention_mask": mask.numpy().astype(np.int64),
            },
        )
        return torch.from_numpy(sums), torch.from_numpy(counts)
