"""Shared fixtures of the dataset-reader tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope.datasets import data_root

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
FIXTURE_ROOT = FIXTURES / "root"
# Read before the autouse fixture below clears it, so real-data tests can still honour it.
_REAL_DATA_ENV = os.environ.get("EMOSCOPE_DATA")


@pytest.fixture
def fixture_root() -> Path:
    """A miniature data root with a few rows of every dataset."""
    return FIXTURE_ROOT


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write a file under ``tmp_path`` (text as UTF-8, bytes as given) and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their data root explicitly; a developer's EMOSCOPE_DATA must not leak in."""
    monkeypatch.delenv("EMOSCOPE_DATA", raising=False)


@pytest.fixture
def real_root() -> Callable[[str], Path]:
    """Return the real data root for a dataset folder, skipping the test when it is absent."""

    def _root(folder: str) -> Path:
        root = data_root(_REAL_DATA_ENV)
        if not (root / folder).is_dir():
            pytest.skip(f"real data not available: {root / folder} does not exist")
        return root

    return _root
