"""Where the pretrained sentence encoder comes from (kept for imports; see :mod:`emoscope.models`).

emoscope's default model and its retrieval store build on all-MiniLM-L6-v2 (Wang et al., 2020,
"MiniLM"; sentence-transformers release by Reimers & Gurevych). :func:`resolve_base_model` lives
in :mod:`emoscope.models`, the one loader for all model weights.
"""

from __future__ import annotations

from emoscope.models import DEFAULT_BASE_MODEL, ResolvedModel, resolve_base_model

__all__ = ["DEFAULT_BASE_MODEL", "ResolvedModel", "resolve_base_model"]
