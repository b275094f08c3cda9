"""The default recogniser: the shipped fine-tuned model if it is installed, else the lexicon.

The CLI, the HTTP service and batch annotation all start from ``recognizer=None``; this module is
the one place that decides what that means, so that none of them needs the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emoscope.recognizers.base import Recognizer

__all__ = ["default_recognizer_name", "load_default_or", "resolve_recognizer_name"]


def default_recognizer_name() -> str:
    """``"default"`` when the shipped fine-tuned model can be loaded, else ``"lexicon"``.

    "Can be loaded" means the encoder module imports (torch and transformers are installed) and
    the model folder it ships with holds ``config.json`` and ``model.safetensors``.
    """
    try:
        encoder = importlib.import_module("emoscope.recognizers.encoder")
        folder = Path(encoder.default_model_path())
    except Exception:  # a missing optional dependency must not break the caller
        return "lexicon"
    ready = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    return "default" if ready else "lexicon"


def resolve_recognizer_name(name: str | None, log: Callable[[str], None] | None = None) -> str:
    """``name``, or the default recogniser's name; ``log`` hears when the model is missing."""
    if name is None:
        name = default_recognizer_name()
        if name != "default" and log is not None:
            log(f"the default model is not installed; using the {name!r} recogniser")
    return name


def load_default_or(
    name: str | None, log: Callable[[str], None] | None = None, **options: Any
) -> Recognizer:
    """:func:`~emoscope.recognizers.base.load_recognizer` of ``name`` or of the default."""
    # Looked up on the package at call time, as the CLI always did (so it can be replaced there).
    from emoscope.recognizers import load_recognizer

    return load_recognizer(resolve_recognizer_name(name, log), **options)
