"""The local engine: worker processes on this machine (or this process alone)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from emoscope.annotate.options import ChunkResult, ChunkSpec, Job
from emoscope.annotate.worker import ChunkAnnotator

if TYPE_CHECKING:
    from emoscope.recognizers.base import Recognizer

__all__ = ["LocalEngine"]


_WORKER: ChunkAnnotator | None = None


def _die_with_parent(parent: int) -> None:
    """End this worker process when the process ``parent`` ends, even by SIGKILL.

    On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. Everywhere (and as a
    fallback) a daemon thread checks once a second whether the parent is gone (the worker is
    re-parented, so ``os.getppid()`` changes) and exits.
    """
    import threading

    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="emoscope-parent-watchdog", daemon=True).start()


def _init_worker(job: Job, parent: int | None = None) -> None:
    global _WORKER
    if parent is not None:
        _die_with_parent(parent)
    _WORKER = ChunkAnnotator(job)


def _work(spec: ChunkSpec) -> ChunkResult:
    assert _WORKER is not None
    return _WORKER(spec)


def _run_inline(annotator: ChunkAnnotator, pending: list[ChunkSpec]) -> Iterator[ChunkResult]:
    for spec in pending:
        yield annotator(spec)


def _run_local(job: Job, pending: list[ChunkSpec], workers: int) -> Iterator[ChunkResult]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    # spawn: workers start clean (no copied threads or torch state) and load the model once.
    ctx = multiprocessing.get_context("spawn")
    # Workers end with this process even when it is SIGKILLed (they would hold the model in
    # memory and the caller's pipes); so does multiprocessing's resource tracker, which exits
    # when its pipe from this process closes.
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(job, os.getpid())
    ) as pool:
        todo = iter(pending)
        running: set[Future[ChunkResult]] = set()
        window = 2 * workers  # chunks in flight: memory stays bounded whatever the input size
        try:
            for spec in todo:
                running.add(pool.submit(_work, spec))
                if len(running) >= window:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        except BaseException:
            for f in running:
                f.cancel()
            raise


class LocalEngine:
    """Worker processes on this machine (spawned; each loads the recogniser once).

    With one worker, or one chunk, the chunks are annotated in this process with the
    recogniser already loaded, leaving the caller's torch thread setting alone.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def worker_threads(self, cpus: int) -> int:
        # the CPUs shared out, so that N workers do not start N x CPUs threads
        return max(1, cpus // max(self.workers, 1))

    def run(
        self, job: Job, pending: list[ChunkSpec], recognizer: Recognizer
    ) -> Iterator[ChunkResult]:
        if self.workers <= 1 or len(pending) == 1:
            inline = ChunkAnnotator(dataclasses.replace(job, threads=0), recognizer)
            return _run_inline(inline, pending)
        return _run_local(job, pending, min(self.workers, len(pending)))
