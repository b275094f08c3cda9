"""Recognisers for the service and batch-annotation tests, loadable by dotted path.

They are real :class:`~emoscope.recognizers.Recognizer` implementations built on the keyword
rules of ``eval_helpers``; the extra behaviour (sleeping, counting concurrent calls, recording
the dialogue context) is what the tests check. Worker processes import them as
``scale_helpers:Name`` (the tests put ``tests/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from emoscope.dialogue import Dialogue
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import flatten_inputs
from eval_helpers import KeywordRecognizer


class ContextRecognizer(KeywordRecognizer):
    """Keyword predictions whose cues say how many turns of context each utterance had."""

    name = "context-keyword"

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        out = []
        for t in flatten_inputs(inputs):
            p = self._one(t.text)
            speaker = t.utterance.speaker
            out.append(
                EmotionPrediction(
                    probs=p.probs,
                    taxonomy=p.taxonomy,
                    vad=p.vad,
                    cues={"context": len(t.context()), "speaker": speaker, "pid": os.getpid()},
                )
            )
        return out


class PositionRecognizer(KeywordRecognizer):
    """Predicts the GoEmotions label whose index is the number of context turns (capped), so
    an output label tells where in its dialogue an utterance was read."""

    name = "position"

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        labels = self.labels
        out = []
        for t in flatten_inputs(inputs):
            k = min(len(t.context()), len(labels) - 1)
            rest = 0.1 / (len(labels) - 1)
            probs = {lab: (0.9 if i == k else rest) for i, lab in enumerate(labels)}
            out.append(EmotionPrediction(probs=probs, taxonomy="goemotions"))
        return out


class PidRecognizer(KeywordRecognizer):
    """Predicts the GoEmotions label numbered by how many instances this process has built:
    label 1 everywhere means each process loaded the recogniser exactly once."""

    name = "pid"
    built = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).built += 1
        self.number = type(self).built

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        labels = self.labels
        k = min(self.number, len(labels) - 1)
        probs = {lab: (0.9 if i == k else 0.1 / (len(labels) - 1)) for i, lab in enumerate(labels)}
        return [
            EmotionPrediction(probs=probs, taxonomy="goemotions") for _ in flatten_inputs(inputs)
        ]


class SlowRecognizer(KeywordRecognizer):
    """Keyword predictions that take ``EMOSCOPE_TEST_DELAY`` seconds (default 0.15) per call
    and record the largest number of calls running at once."""

    name = "slow-keyword"

    def __init__(self) -> None:
        super().__init__()
        self.delay = float(os.environ.get("EMOSCOPE_TEST_DELAY", "0.15"))
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = 0

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            return super().predict(inputs)
        finally:
            with self._lock:
                self.active -= 1


class GatedRecognizer(KeywordRecognizer):
    """Keyword predictions that wait until :attr:`gate` is set (after the warm-up call)."""

    name = "gated-keyword"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self._warm = False

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        if self._warm:
            self.entered.set()
            self.gate.wait(timeout=30)
        self._warm = True
        return super().predict(inputs)


class FragileRecognizer(KeywordRecognizer):
    """Keyword predictions that raise on any text containing ``boom``."""

    name = "fragile-keyword"

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        targets = flatten_inputs(inputs)
        if any("boom" in t.text for t in targets):
            raise RuntimeError("boom")
        return super().predict(inputs)


@contextlib.contextmanager
def running_server(app: object) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1:<free port>; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with other tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def tiny_encoder_folder(base_model: Path, folder: Path) -> Path:
    """Save an untrained encoder model (meld, goemotions and VAD heads) over a tiny base model,
    to be loaded through :class:`~emoscope.recognizers.encoder.EncoderRecognizer`'s real path."""
    from emoscope.labels import get_taxonomy
    from emoscope.recognizers.encoder import EncoderConfig, HeadConfig, build_model, save_model

    meld, go = get_taxonomy("meld"), get_taxonomy("goemotions")
    cfg = EncoderConfig(
        base_model=str(base_model),
        n_frozen_layers=2,
        max_seq_length=16,
        max_turns=4,
        heads=[
            HeadConfig("meld", "single", "meld", list(meld.labels)),
            HeadConfig("goemotions", "multi", "goemotions", list(go.labels)),
            HeadConfig("emobank", "vad", None, ["valence", "arousal", "dominance"]),
        ],
    )
    model, _ = build_model(cfg)
    return save_model(model, folder)


def use_as_default_model(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` the shipped default model for one test.

    Only the location changes: ``default_recognizer_name()``, ``emoscope.load()`` and the
    ``default`` recogniser then find and load it through their real code (the trained default
    model is not in the repository while it is being trained).
    """
    from emoscope.recognizers import encoder

    monkeypatch.setattr(encoder, "default_model_path", lambda: folder)
