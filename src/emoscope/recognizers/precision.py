"""Which numeric precision the default model runs in, and the bfloat16 autocast wrapper.

bfloat16 (Kalamkar et al., 2019, "A Study of BFLOAT16 for Deep Learning Training") keeps
float32's exponent range with an 8-bit mantissa. On CPUs with AMX tiles or AVX512-BF16, oneDNN
runs bfloat16 matrix products several times faster than float32 (``benchmarks/roofline.py``
measures it); elsewhere they are emulated and slower, so float32 stays the choice there. On the
shipped model bfloat16 autocast changes MELD test weighted-F1 by less than 0.001
(``benchmarks/speed.py``).
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
from collections.abc import Callable

import torch
from torch import nn

from emoscope.errors import EmoscopeError

__all__ = [
    "bf16_autocast",
    "bf16_linear_copy",
    "bf16_native",
    "default_backend",
    "int8_linear_copy",
    "resolve_bf16",
]

_ENV = "EMOSCOPE_BACKEND"
_CONCRETE = ("torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8")


@functools.cache
def bf16_native() -> bool:
    """Whether this CPU has native bfloat16 matrix arithmetic (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_bf16(bf16: bool | None) -> bool:
    """``bf16`` itself, or for ``None`` (auto) whether this CPU multiplies bf16 natively: where
    it is emulated, autocast makes a small LLM several times slower (``llm_meld.json``,
    ``precision``: on an AVX2-only EPYC, SmolLM2 label scoring 5.6x and LoRA steps 12x slower
    than float32)."""
    return bf16_native() if bf16 is None else bool(bf16)


def default_backend() -> str:
    """The encoder backend ``auto`` stands for: ``$EMOSCOPE_BACKEND`` if set, else
    ``torch-bf16`` on a CPU with native bfloat16 and ``torch`` (float32) otherwise."""
    env = os.environ.get(_ENV, "").strip()
    if env and env != "auto":
        if env not in _CONCRETE:
            raise EmoscopeError(
                f"${_ENV}={env!r} is not a backend; expected one of: {', '.join(_CONCRETE)}"
            )
        return env
    return "torch-bf16" if bf16_native() else "torch"


TokenSums = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def bf16_autocast(fn: TokenSums) -> TokenSums:
    """``fn`` run under CPU bfloat16 autocast, its outputs returned in float32."""

    @functools.wraps(fn)
    def run(
        input_ids: torch.Tensor, mask: torch.Tensor, *rest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sums, counts = fn(input_ids, mask, *rest)
        return sums.float(), counts.float()

    return run


def bf16_linear_copy(model: nn.Module, part: str = "backbone") -> nn.Module:
    """A copy of ``model`` whose ``part``'s linear layers hold bfloat16 weights; every other
    parameter and buffer is shared with ``model``, not copied.

    Autocast casts each float32 weight to bfloat16 again at every forward pass (the whole
    backbone's weights per call: most of a single text's latency); casting them once gives the
    same rounding, so the outputs under :func:`bf16_autocast` are bit-identical. ``model``
    itself stays float32 (training and saving read it). The copy is a snapshot: changes to
    ``model``'s linear weights made afterwards do not reach it.
    """
    fast = _copy_linears(model, part)
    for m in getattr(fast, part).modules():
        if isinstance(m, nn.Linear):
            m.to(torch.bfloat16)
    return fast.eval()


def int8_linear_copy(model: nn.Module, part: str = "backbone") -> nn.Module:
    """A copy of ``model`` whose ``part``'s linear layers are dynamically int8-quantised
    (Jacob et al., 2018, "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference"; ``torch.ao.quantization.quantize_dynamic``: int8 weights,
    activations quantised per call, VNNI int8 products on x86); every other tensor is shared
    with ``model``, which stays float32."""
    fast = _copy_linears(model, part)
    sub = getattr(fast, part)
    for m in sub.modules():
        if isinstance(m, nn.Linear):
            m.__class__ = nn.Linear  # quantize_dynamic matches the exact type, not subclasses
    torch.ao.quantization.quantize_dynamic(sub, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return fast.eval()


def _copy_linears(model: nn.Module, part: str) -> nn.Module:
    """A deep copy of ``model`` in which only ``part``'s linear layers' tensors are new."""
    linears = [m for m in getattr(model, part).modules() if isinstance(m, nn.Linear)]
    copied = {id(p) for m in linears for p in m.parameters()}
    shared = itertools.chain(model.parameters(), model.buffers())
    memo: dict[int, object] = {id(t): t for t in shared if id(t) not in copied}
    return copy.deepcopy(model, memo)
