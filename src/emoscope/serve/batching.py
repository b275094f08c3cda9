"""Dynamic micro-batching: concurrent requests gathered into one forward pass.

A transformer encoder on a CPU does far more work per second on a batch of texts than on one
text at a time (one matrix product instead of many thin ones), so a service that answers each
request with its own forward pass wastes most of the machine under load. :class:`MicroBatcher`
runs one worker thread that takes the first waiting request, waits up to ``max_wait_ms`` for
more, and predicts all of them together (at most ``max_texts`` texts), the way inference
servers such as NVIDIA Triton's dynamic batcher and TorchServe's batching do.

Each request still gets exactly its own predictions, in order. When a batched call fails, the
requests of that batch are re-run one by one, so an error (e.g. one bad input) reaches only the
request that caused it. :meth:`MicroBatcher.close` fails the requests still waiting and stops the
thread without waiting for new work, so shutting down never hangs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatcherClosed", "Batchers", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The batcher was closed before the request ran."""


@dataclass
class _Request(Generic[T, R]):
    items: list[T]
    future: Future[list[R]] = field(default_factory=Future)


_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent :meth:`submit` calls into calls of ``predict`` on one list.

    Args:
        predict: maps a list of items to one result per item, in order.
        max_wait_ms: how long the first request of a batch waits for others to join.
        max_texts: most items per ``predict`` call; a request larger than this runs alone.
        name: the worker thread's name.
    """

    def __init__(
        self,
        predict: Callable[[list[T]], Sequence[R]],
        max_wait_ms: float = 2.0,
        max_texts: int = 64,
        name: str = "emoscope-batcher",
    ) -> None:
        if max_wait_ms < 0 or max_texts < 1:
            raise ValueError("max_wait_ms must be >= 0 and max_texts >= 1")
        self._predict = predict
        self.max_wait = max_wait_ms / 1000.0
        self.max_texts = max_texts
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._carry: _Request[T, R] | None = None
        self.batches = 0  # predict calls made (for tests and metrics)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        """Queue ``items``; the future resolves to their results (or the request's error)."""
        req: _Request[T, R] = _Request(list(items))
        with self._lock:  # no request slips in after close() has drained the queue
            if self._closed.is_set():
                req.future.set_exception(BatcherClosed("the service is shutting down"))
                return req.future
            self._queue.put(req)
        return req.future

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; requests that have not started fail with :class:`BatcherClosed`."""
        with self._lock:
            self._closed.set()
            self._queue.put(_STOP)
        self._thread.join(timeout)
        self._fail_waiting()

    # -- worker ---------------------------------------------------------------------------------
    def _fail_waiting(self) -> None:
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(req, _Request) and not req.future.done():
                req.future.set_exception(BatcherClosed("the service is shutting down"))

    def _gather(self, first: _Request[T, R]) -> tuple[list[_Request[T, R]], bool]:
        """The batch starting with ``first``; True if a stop signal was met."""
        batch, size = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_texts:
            left = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            assert isinstance(nxt, _Request)
            if size + len(nxt.items) > self.max_texts:
                self._carry = nxt  # it starts the next batch, keeping arrival order
                break
            batch.append(nxt)
            size += len(nxt.items)
        return batch, False

    def _loop(self) -> None:
        while not self._closed.is_set():
            first, self._carry = (self._carry or self._queue.get()), None
            if first is _STOP:
                break
            assert isinstance(first, _Request)
            batch, stop = self._gather(first)
            self._run(batch)
            if stop:
                break
        if self._carry is not None:
            self._carry.future.set_exception(BatcherClosed("the service is shutting down"))
        self._fail_waiting()

    def _run(self, batch: list[_Request[T, R]]) -> None:
        items = [x for req in batch for x in req.items]
        try:
            self.batches += 1
            results = list(self._predict(items))
            if len(results) != len(items):
                raise RuntimeError(f"predict returned {len(results)} results for {len(items)}")
        except Exception as e:  # isolate: re-run each request on its own
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            for req in batch:
                self._run([req])
            return
        start = 0
        for req in batch:
            req.future.set_result(results[start : start + len(req.items)])
            start += len(req.items)


class Batchers:
    """One :class:`MicroBatcher` per (recogniser, output taxonomy) pair a service answers with.

    ``max_wait_ms=0`` turns micro-batching off (:attr:`enabled` is False).
    """

    def __init__(self, max_wait_ms: float, max_texts: int) -> None:
        self.max_wait_ms = max_wait_ms
        self.max_texts = max_texts
        self._lock = threading.Lock()
        self._by_key: dict[tuple[int, str | None], MicroBatcher[Any, Any]] = {}

    @property
    def enabled(self) -> bool:
        """Whether requests are micro-batched."""
        return self.max_wait_ms > 0

    def submit(
        self,
        recognizer: Any,
        taxonomy: Any,
        texts: Sequence[str],
        predict: Callable[[Any, list[str], Any], Sequence[Any]],
    ) -> Future[list[Any]]:
        """Queue ``texts`` for ``predict(recognizer, batch, taxonomy)`` with others alike."""
        key = (id(recognizer), None if taxonomy is None else str(taxonomy.name))
        with self._lock:
            batcher = self._by_key.get(key)
            if batcher is None:
                batcher = MicroBatcher(
                    lambda batch: predict(recognizer, batch, taxonomy),
                    self.max_wait_ms,
                    self.max_texts,
                )
                self._by_key[key] = batcher
        return batcher.submit(texts)

    def close(self) -> None:
        """Close every batcher (see :meth:`MicroBatcher.close`)."""
        with self._lock:
            batchers, self._by_key = list(self._by_key.values()), {}
        for b in batchers:
            b.close()
