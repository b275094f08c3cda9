"""Fixtures of the LLM tests: a tiny random Llama saved like a Hub model, a loopback chat server
(``chat_server``) and no Hub or server settings from the environment (both from llm_helpers)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_helpers import _offline_hub, build_tiny_llama, chat_server, one_torch_thread


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + chat-template tokenizer saved to disk (loaded via from_pretrained)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _one_torch_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    # On a busy 2-core machine, torch's second intra-op thread makes tiny models ~8x slower
    # (measured: a 10-step LoRA run took 12 s with 2 threads, 1.6 s with 1). Restored after.
    if "tiny_llama" not in request.fixturenames and "torch" not in sys.modules:
        yield
        return
    with one_torch_thread():
        yield


__all__ = ["_offline_hub", "chat_server"]
