"""Fixtures of the LLM tests: a tiny random Llama saved like a Hub model, a loopback chat server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_helpers import ChatServer, build_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + chat-template tokenizer saved to disk (loaded via from_pretrained)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A fresh loopback chat server (the emotion script by default)."""
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "EMOSCOPE_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("BACKEND", "MODEL", "PROMPT", "RETRIEVE", "STORE", "TAXONOMY", "CACHE_DIR"):
        monkeypatch.delenv(f"EMOSCOPE_LLM_{name}", raising=False)


@pytest.fixture(autouse=True)
def _one_torch_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    # On a busy 2-core machine, torch's second intra-op thread makes tiny models ~8x slower
    # (measured: a 10-step LoRA run took 12 s with 2 threads, 1.6 s with 1). Restored after.
    if "tiny_llama" not in request.fixturenames and "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
