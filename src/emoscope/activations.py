"""Read a transformer's hidden states layer by layer, pooled to one vector per text.

The residual stream of every layer is read either from ``output_hidden_states`` or through
forward hooks on the transformer blocks, pooled per text (last token, mean over tokens, or the
first token) and gathered batch by batch. For long corpora the vectors are streamed to disk as
one float16 ``.npy`` file per layer (memory-mapped), so memory stays bounded by one batch.

Layer numbering (used throughout :mod:`emoscope.probe` and :mod:`emoscope.steer`): layer ``0``
is the embedding output and layer ``i`` (``1..n_layers``) the output of the ``i``-th transformer
block, i.e. the index into ``output_hidden_states``. Note that some models (Llama, Qwen, GPT-2)
apply their final normalisation to the last entry of ``hidden_states``; the hook-based reader
returns the raw block output instead, so the two readers agree on every layer but the last.

Works for encoder models (BERT, MiniLM; pooled by mean by default, as sentence-transformers
does) and decoder models (Llama, Qwen, GPT-2 families; pooled by the last token, which in a
causal model is the only position that has seen the whole text). Layer-wise reading of emotion
follows "Decoding Emotion in the Deep: A Systematic Study of How LLMs Represent, Retain, and
Express Emotion" (Zhang & Zhong, 2025, arXiv:2510.04064).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope._io import write_json
from emoscope.errors import EmoscopeError
from emoscope.models import render_chat

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "POOLINGS",
    "Activations",
    "LoadedModel",
    "extract_activations",
    "layer_modules",
    "load_model",
    "parse_layers",
    "render_chat",
    "token_activations",
]

POOLINGS = ("auto", "last", "mean", "first")
_MINILM_NAMES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_DECODER_TYPES = {
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "gptj",
    "phi",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo",
    "olmo2",
    "falcon",
    "opt",
    "bloom",
    "smollm3",
}


@dataclass
class LoadedModel:
    """A model ready for reading activations, with what emoscope needs to know about it.

    Attributes:
        model: the ``torch.nn.Module`` (in eval mode).
        tokenizer: its tokenizer (a pad token is set if the model had none).
        name: where it was loaded from.
        kind: ``"encoder"`` (bidirectional) or ``"decoder"`` (causal language model).
        n_layers: number of transformer blocks; hidden-state layers are ``0..n_layers``.
        hidden_size: width of the residual stream.
        random_init: whether the weights are a random initialisation from the config.
    """

    model: Any
    tokenizer: Any
    name: str
    kind: str
    n_layers: int
    hidden_size: int
    random_init: bool = False

    @property
    def causal(self) -> bool:
        """Whether the model is a causal (decoder) language model."""
        return self.kind == "decoder"

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    def default_pooling(self) -> str:
        """``last`` for decoders, ``mean`` for encoders."""
        return "last" if self.causal else "mean"


def _resolve_location(name: str | None) -> tuple[str, str]:
    """``(where to load from, the name to report)``; MiniLM aliases report the Hub id, GGUF
    weights load from their de-quantised copy (see :mod:`emoscope.models`)."""
    from emoscope.models import DEFAULT_BASE_MODEL, materialize, resolve

    if name is None:
        name = DEFAULT_BASE_MODEL
    res = resolve(name)
    display = DEFAULT_BASE_MODEL if res.name == "minilm" else name
    if res.adapter is not None:
        raise EmoscopeError(f"{name}: a LoRA adapter folder; give its base model instead")
    return materialize(res), display


def _is_decoder(config: Any) -> bool:
    archs = [str(a) for a in (getattr(config, "architectures", None) or [])]
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        return True
    if archs:
        return False
    return str(getattr(config, "model_type", "")) in _DECODER_TYPES


def load_model(
    name_or_path: str | None = None,
    *,
    random_init: bool = False,
    seed: int = 0,
    device: str = "cpu",
    dtype: str | None = None,
    kind: str | None = None,
) -> LoadedModel:
    """Load a Hugging Face model and tokenizer for reading activations (and generating).

    Args:
        name_or_path: a local folder or Hub id; ``None`` or ``"minilm"`` means emoscope's base
            encoder all-MiniLM-L6-v2 (see :func:`emoscope.base_model.resolve_base_model`).
        random_init: build the model from its config with random weights instead (the
            control for probing: same architecture and tokenizer, nothing learned).
        seed: torch seed for ``random_init``.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` or ``None`` (the checkpoint's).
        kind: force ``"encoder"`` or ``"decoder"``; by default decided from the config's
            architectures (``...ForCausalLM`` / ``...LMHeadModel`` are decoders).

    Raises:
        EmoscopeError: the model or tokenizer cannot be loaded, or ``kind``/``dtype`` is unknown.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    location, display = _resolve_location(name_or_path)
    if kind not in (None, "encoder", "decoder"):
        raise EmoscopeError(f"unknown model kind {kind!r}; expected 'encoder' or 'decoder'")
    torch_dtype = None
    if dtype is not None:
        if dtype not in ("float32", "float16", "bfloat16"):
            raise EmoscopeError(f"unknown dtype {dtype!r}; expected float32, float16 or bfloat16")
        torch_dtype = getattr(torch, dtype)
    try:
        config = AutoConfig.from_pretrained(location)
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as e:
        raise EmoscopeError(f"cannot load model {location!r}: {e}") from e
    decoder = _is_decoder(config) if kind is None else kind == "decoder"
    auto = AutoModelForCausalLM if decoder else AutoModel
    # transformers draws a "Loading weights" progress bar on stderr; CLI output stays clean.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        if random_init:
            torch.manual_seed(seed)
            model = auto.from_config(config)
            if torch_dtype is not None:
                model = model.to(torch_dtype)
        elif decoder:
            from emoscope.models import load_causal_lm

            loaded = load_causal_lm(location, device=device, dtype=dtype)
            model, tokenizer = loaded.model, loaded.tokenizer
        else:
            kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
            model = auto.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as e:
        raise EmoscopeError(f"cannot load model {location!r}: {e}") from e
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers: Any = getattr(text_config, "num_hidden_layers", None) or getattr(
        text_config, "n_layer", 0
    )
    hidden: Any = getattr(text_config, "hidden_size", None) or getattr(text_config, "n_embd", 0)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=display,
        kind="decoder" if decoder else "encoder",
        n_layers=int(n_layers),
        hidden_size=int(hidden),
        random_init=random_init,
    )


_KNOWN_BLOCK_PATHS = (
    "model.layers",
    "model.model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "encoder.layer",
    "bert.encoder.layer",
    "layers",
)


def layer_modules(model: nn.Module, n_layers: int | None = None) -> nn.ModuleList:
    """The model's list of transformer blocks (block ``i`` produces hidden-state layer ``i+1``).

    Known paths (``model.layers``, ``transformer.h``, ``encoder.layer`` ...) are tried first,
    then the first ``ModuleList`` with ``n_layers`` entries.
    """
    from torch import nn

    for path in _KNOWN_BLOCK_PATHS:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, nn.ModuleList) and (n_layers is None or len(mod) == n_layers):
            return mod
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and (n_layers in (None, len(mod))):
            return mod
    raise EmoscopeError(f"cannot find the transformer blocks of {type(model).__name__}")


def parse_layers(
    spec: str | int | Sequence[int] | None, n_layers: int, *, allow_embeddings: bool = True
) -> list[int]:
    """Turn a layer specification into a sorted list of hidden-state layer indices.

    ``spec`` may be ``"all"`` (or ``None``), ``"last"``, ``"mid"``, an integer, a list of
    integers, or a string of comma-separated numbers and ranges such as ``"11-20"`` or
    ``"0,3,6-8"``. Negative integers count from the end (``-1`` is the last layer).

    Raises:
        EmoscopeError: the specification does not parse or names a layer out of range.
    """
    lowest = 0 if allow_embeddings else 1
    expected = f"layers between {lowest} and {n_layers}, e.g. 'all', '3', '11-20' or '0,2,4-6'"
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(lowest, n_layers + 1))
    out: list[int] = []
    if isinstance(spec, int):
        items: list[int] = [spec]
    elif isinstance(spec, str):
        items = []
        text = spec.strip().lower()
        if text == "last":
            return [n_layers]
        if text == "mid":
            return [max(lowest, n_layers // 2)]
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if a > b:
                    raise EmoscopeError(f"bad layer range {part!r}; expected {expected}")
                items.extend(range(a, b + 1))
            elif re.fullmatch(r"-?\d+", part):
                items.append(int(part))
            else:
                raise EmoscopeError(f"bad layer specification {spec!r}; expected {expected}")
    else:
        items = [int(x) for x in spec]
    for i in items:
        j = n_layers + 1 + i if i < 0 else i
        if not lowest <= j <= n_layers:
            raise EmoscopeError(f"layer {i} is out of range; expected {expected}")
        out.append(j)
    if not out:
        raise EmoscopeError(f"no layers selected by {spec!r}; expected {expected}")
    return sorted(set(out))


# --------------------------------------------------------------------------------------------
# Activation store


@dataclass
class Activations:
    """Pooled hidden states: one ``(n, hidden_size)`` array per layer.

    In memory (float32) or on disk (``layer_XXX.npy`` float16 files opened memory-mapped plus
    ``meta.json``), see :meth:`load`.
    """

    layers: tuple[int, ...]
    pooling: str
    model: str
    n: int
    hidden_size: int
    arrays: dict[int, np.ndarray] = field(repr=False)
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def layer(self, layer: int) -> np.ndarray:
        """The ``(n, hidden_size)`` array of one layer."""
        if layer not in self.arrays:
            raise EmoscopeError(
                f"layer {layer} was not extracted; available: {', '.join(map(str, self.layers))}"
            )
        return self.arrays[layer]

    def __getitem__(self, layer: int) -> np.ndarray:
        return self.layer(layer)

    def subset(self, index: Sequence[int] | np.ndarray) -> Activations:
        """The rows ``index`` of every layer, in memory as float32."""
        idx = np.asarray(index, dtype=np.int64)
        arrays = {lay: np.asarray(a[idx], dtype=np.float32) for lay, a in self.arrays.items()}
        return Activations(
            self.layers, self.pooling, self.model, len(idx), self.hidden_size, arrays, None,
            dict(self.meta),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> Activations:
        """Open activations written by :func:`extract_activations` with ``out_dir``."""
        folder = Path(path)
        meta_file = folder / "meta.json"
        if not meta_file.is_file():
            raise EmoscopeError(f"{folder}: no meta.json; expected a folder written by emoscope")
        meta = json.loads(meta_file.read_text("utf-8"))
        arrays = {
            int(lay): np.load(folder / f"layer_{int(lay):03d}.npy", mmap_mode="r" if mmap else None)
            for lay in meta["layers"]
        }
        return cls(
            tuple(int(x) for x in meta["layers"]), meta["pooling"], meta["model"], int(meta["n"]),
            int(meta["hidden_size"]), arrays, folder, meta,
        )  # fmt: skip


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool ``(batch, seq, hidden)`` states to ``(batch, hidden)`` using the attention mask."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    import torch

    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if pooling == "first":
        return hidden[rows, mask.argmax(1)]  # first real token, whatever side the padding is on
    return hidden[rows, mask.shape[1] - 1 - mask.flip(1).argmax(1)]  # last real token


def _batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    # Batches of similar length waste less compute on padding; lengths are estimated cheaply.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _resolve_pooling(lm: LoadedModel, pooling: str) -> str:
    if pooling not in POOLINGS:
        raise EmoscopeError(f"unknown pooling {pooling!r}; expected one of: {', '.join(POOLINGS)}")
    return lm.default_pooling() if pooling == "auto" else pooling


def extract_activations(
    lm: LoadedModel,
    texts: Sequence[str],
    *,
    layers: str | Sequence[int] | None = "all",
    pooling: str = "auto",
    batch_size: int = 32,
    max_length: int = 256,
    out_dir: str | Path | None = None,
    method: str = "hidden_states",
    add_special_tokens: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Activations:
    """Pooled hidden states of ``texts`` at ``layers``.

    Args:
        lm: a model from :func:`load_model`.
        texts: the inputs (already formatted, e.g. with :func:`render_chat`, if wanted).
        layers: see :func:`parse_layers`.
        pooling: ``last`` (last real token), ``mean`` (over real tokens), ``first`` (e.g.
            ``[CLS]``) or ``auto`` (``last`` for decoders, ``mean`` for encoders).
        batch_size: texts per forward pass; texts are batched by length, results come back in
            input order.
        max_length: longer texts are truncated (keeping the beginning).
        out_dir: stream the vectors to ``out_dir/layer_XXX.npy`` (float16, memory-mapped)
            instead of keeping float32 arrays in memory.
        method: ``hidden_states`` (``output_hidden_states=True``) or ``hooks`` (forward hooks
            on the blocks that pool inside the hook, so the full per-token states of all
            layers are never held at once; layer 0 is not available this way).
        add_special_tokens: let the tokenizer add BOS/CLS/SEP tokens.
        progress: called with ``(done, total)`` after every batch.

    Raises:
        EmoscopeError: no texts, an unknown pooling or method, or a bad layer specification.
    """
    import torch

    if not texts:
        raise EmoscopeError("no texts to extract activations from")
    if method not in ("hidden_states", "hooks"):
        raise EmoscopeError(f"unknown method {method!r}; expected 'hidden_states' or 'hooks'")
    pool = _resolve_pooling(lm, pooling)
    chosen = parse_layers(layers, lm.n_layers, allow_embeddings=method == "hidden_states")
    n, h = len(texts), lm.hidden_size
    folder = Path(out_dir) if out_dir is not None else None
    arrays: dict[int, np.ndarray] = {}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # meta.json is written last and marks a complete folder: drop a previous run's first.
        (folder / "meta.json").unlink(missing_ok=True)
        for lay in chosen:
            arrays[lay] = np.lib.format.open_memmap(
                folder / f"layer_{lay:03d}.npy", mode="w+", dtype=np.float16, shape=(n, h)
            )
    else:
        arrays = {lay: np.zeros((n, h), dtype=np.float32) for lay in chosen}

    tok = lm.tokenizer
    blocks = layer_modules(lm.model, lm.n_layers) if method == "hooks" else None
    captured: dict[int, torch.Tensor] = {}
    current_mask: list[torch.Tensor] = []

    def make_hook(layer: int) -> Callable[..., None]:
        def hook(_mod: Any, _args: Any, output: Any) -> None:
            states = output[0] if isinstance(output, tuple) else output
            captured[layer] = _pool(states.float(), current_mask[0], pool)

        return hook

    handles = []
    done = 0
    # Right padding keeps every text's positions 0..len-1 (left padding would shift the
    # position ids of short texts in models that do not derive them from the mask).
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        if blocks is not None:
            handles = [blocks[lay - 1].register_forward_hook(make_hook(lay)) for lay in chosen]
        with torch.inference_mode():
            for idx in _batches(texts, batch_size):
                enc = tok(
                    [texts[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    add_special_tokens=add_special_tokens,
                ).to(lm.device)
                mask = enc["attention_mask"]
                current_mask[:] = [mask]
                captured.clear()
                # The bare transformer gives the same hidden states without the LM head's logits.
                base = getattr(lm.model, "base_model", lm.model)
                out = base(**enc, output_hidden_states=blocks is None, use_cache=False)
                rows = np.asarray(idx)
                for lay in chosen:
                    if blocks is None:
                        vec = _pool(out.hidden_states[lay].float(), mask, pool)
                    else:
                        vec = captured[lay]
                    arrays[lay][rows] = vec.cpu().numpy().astype(arrays[lay].dtype)
                done += len(idx)
                if progress is not None:
                    progress(done, n)
    finally:
        tok.padding_side = side
        for handle in handles:
            handle.remove()
    meta = {
        "model": lm.name,
        "random_init": lm.random_init,
        "kind": lm.kind,
        "pooling": pool,
        "method": method,
        "layers": chosen,
        "n": n,
        "hidden_size": h,
        "max_length": max_length,
    }
    if folder is not None:
        for arr in arrays.values():
            if isinstance(arr, np.memmap):
                arr.flush()
        write_json(folder / "meta.json", meta)
        return Activations.load(folder)
    return Activations(tuple(chosen), pool, lm.name, n, h, arrays, None, meta)


def token_activations(
    lm: LoadedModel,
    token_ids: Sequence[Sequence[int]],
    *,
    layers: str | Sequence[int] | None = "all",
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Per-token hidden states of already tokenised sequences.

    Returns, for every sequence, a float32 array of shape ``(len(layers), len(sequence),
    hidden_size)``. Sequences are right-padded in batches; padding never reaches the result.
    """
    import torch

    chosen = parse_layers(layers, lm.n_layers)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    out: list[np.ndarray] = [np.empty(0)] * len(token_ids)
    with torch.inference_mode():
        for start in range(0, len(token_ids), batch_size):
            chunk = [list(map(int, s)) for s in token_ids[start : start + batch_size]]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, seq in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            res = lm.model(
                input_ids=ids.to(lm.device),
                attention_mask=mask.to(lm.device),
                output_hidden_states=True,
                use_cache=False,
            )
            stacked = torch.stack([res.hidden_states[lay].float() for lay in chosen], dim=1)
            arr = stacked.cpu().numpy()
            for row, seq in enumerate(chunk):
                out[start + row] = arr[row, :, : len(seq)]
    return out
