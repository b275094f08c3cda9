"""Headless Chromium (Debian ``chromium``) driven by Playwright, for the page tests.

Set-up: ``bash scripts/install_chromium.sh`` (installs Debian's ``chromium`` when run as root
with apt-get) and ``pip install playwright`` (no ``playwright install``: the tests drive the
system browser at /usr/bin/chromium, or ``$EMOSCOPE_CHROMIUM``). Screenshots go to
``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("EMOSCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def require_browser() -> Any:
    """Playwright's sync API; skips the calling test module when Chromium or Playwright is
    missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"Chromium is not installed ({CHROMIUM} missing): run scripts/install_chromium.sh "
            "(or apt-get install -y chromium)",
            allow_module_level=True,
        )
    return pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: pip install playwright"
    )


@contextmanager
def chromium_context(sync_api: Any, profile: Path) -> Iterator[Any]:
    """A fresh persistent browser context (Playwright's way to take a new --user-data-dir)."""
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
