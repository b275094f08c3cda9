"""Fixtures of the stimuli tests: small EQ-Bench and EmoBench files in the real formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from stimuli_helpers import write_bench_files


@pytest.fixture
def bench_root(tmp_path: Path) -> Path:
    """Small EQ-Bench and EmoBench files in the real formats."""
    return write_bench_files(tmp_path)
