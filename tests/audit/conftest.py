"""Fixtures of the audit tests: a tiny random Llama, a data root with every dataset an audit
reads (MELD, GoEmotions, EmoBench, EQ-Bench; no SEV files) and sizes small enough for them."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helpers in (TESTS / "llm", TESTS / "stimuli"):
    if str(helpers) not in sys.path:
        sys.path.insert(0, str(helpers))

from llm_helpers import (  # noqa: E402
    _offline_hub,
    build_tiny_llama,
    chat_server,
    one_torch_thread,
)
from stimuli_helpers import write_bench_files  # noqa: E402


@pytest.fixture(scope="session")
def audit_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a chat template, saved like a Hub model."""
    pytest.importorskip("transformers")
    return build_tiny_llama(tmp_path_factory.mktemp("audit-llama"))


@pytest.fixture(scope="session")
def audit_root(mini_data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The miniature data root plus small EmoBench and EQ-Bench files."""
    root = tmp_path_factory.mktemp("audit-data") / "data"
    shutil.copytree(mini_data_root, root)
    return write_bench_files(root)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


__all__ = ["_offline_hub", "chat_server"]
