"""Import an object named by a dotted path: how recognisers and chat backends outside emoscope
(and the built-in ones, registered by name) are found."""

from __future__ import annotations

import importlib
from typing import Any

from emoscope.errors import EmoscopeError

__all__ = ["import_object", "is_dotted_path"]


def is_dotted_path(spec: str) -> bool:
    """Whether ``spec`` looks like ``package.module:Name`` or ``package.module.Name``."""
    return ":" in spec or ("." in spec and not spec.startswith("."))


def import_object(path: str, what: str) -> Any:
    """The object at ``path`` (``package.module:Name`` or ``package.module.Name``).

    ``what`` names the kind of object in errors (``"recogniser"``, ``"backend"``).

    Raises:
        EmoscopeError: the path is malformed, the module cannot be imported, or it has no such
            attribute.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise EmoscopeError(f"{what} path {path!r} should look like 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise EmoscopeError(f"cannot import {module_name!r} for {what} {path!r}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise EmoscopeError(
            f"cannot import {attr!r} for {what} {path!r}: module {module_name!r} has no "
            f"attribute {attr!r}"
        ) from None
