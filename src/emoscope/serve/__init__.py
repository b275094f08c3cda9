"""emoscope over HTTP: a FastAPI service with a web page (``emoscope serve``).

See :mod:`emoscope.serve.app` for the endpoints and limits, and ``docs/serve.md`` for how to run
it. Needs ``fastapi`` and ``uvicorn``.
"""

from __future__ import annotations

from emoscope.serve.app import STATIC_DIR, ServeConfig, create_app, openapi_json, write_openapi

__all__ = ["STATIC_DIR", "ServeConfig", "create_app", "openapi_json", "write_openapi"]
