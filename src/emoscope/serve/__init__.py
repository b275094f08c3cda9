"""emoscope over HTTP: a FastAPI service with a web page (``emoscope serve``).

See :mod:`emoscope.serve.app` for the endpoints and limits, :mod:`emoscope.serve.config` for
the settings, and ``docs/serve.md`` for how to run it. Needs ``fastapi`` and ``uvicorn``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emoscope.serve.config import API_KEYS_ENV, ServeConfig, read_api_keys

if TYPE_CHECKING:
    from emoscope.serve.app import STATIC_DIR, create_app, openapi_json, write_openapi

__all__ = [
    "API_KEYS_ENV",
    "STATIC_DIR",
    "ServeConfig",
    "create_app",
    "openapi_json",
    "read_api_keys",
    "write_openapi",
]
_APP_NAMES = ("STATIC_DIR", "create_app", "openapi_json", "write_openapi")


def __getattr__(name: str) -> Any:
    # fastapi is loaded only when one of these names is used (the CLI starts without it).
    if name in _APP_NAMES:
        from emoscope.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'emoscope.serve' has no attribute {name!r}")
