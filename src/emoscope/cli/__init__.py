"""The ``emoscope`` command line, a layer above the library (which never imports it).

:mod:`~emoscope.cli.core` holds the application and the core commands (analyze, dialogue,
explain, eval, datasets, recognizers, train); each feature module adds its commands with
``register(app)`` and keeps heavy imports inside its command functions so that start-up stays
fast. Entry point: :func:`main` (``emoscope = "emoscope.cli:main"``).
"""

from __future__ import annotations

import importlib

from emoscope.cli.core import app, main
from emoscope.recognizers.default import default_recognizer_name

__all__ = ["app", "default_recognizer_name", "main"]

_COMMAND_MODULES: tuple[str, ...] = (
    "emoscope.cli.llm",
    "emoscope.cli.retrieval",
    "emoscope.cli.support",
    "emoscope.cli.inside",
    "emoscope.cli.serve",
    "emoscope.cli.annotate",
    "emoscope.cli.audit",
)


def _register_feature_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_feature_commands()
