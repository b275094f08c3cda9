"""The :class:`Engine` protocol: what runs the chunks of a job (``local`` or ``ray``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from emoscope.errors import EmoscopeError

if TYPE_CHECKING:
    from emoscope.annotate.options import ChunkResult, ChunkSpec, Job
    from emoscope.recognizers.base import Recognizer

__all__ = ["ENGINES", "Engine", "make_engine"]


class Engine(Protocol):
    """Runs chunks on workers that each load the recogniser once, and yields their results.

    Results may come in any order; the driver writes each to its own chunk file.
    """

    name: str
    workers: int
    """Processes or actors asked for (0: the engine decides, e.g. the Ray cluster's CPUs)."""

    def worker_threads(self, cpus: int) -> int:
        """Torch threads per worker on a machine with ``cpus`` CPUs."""
        ...

    def run(
        self, job: Job, pending: list[ChunkSpec], recognizer: Recognizer
    ) -> Iterator[ChunkResult]:
        """Annotate ``pending``; ``recognizer`` (already loaded) may serve this process."""
        ...


ENGINES = ("local", "ray")


def make_engine(name: str, workers: int | None = None) -> Engine:
    """The engine ``name`` with ``workers`` processes/actors (default: the CPU count)."""
    if name == "local":
        from emoscope.annotate.local import LocalEngine

        return LocalEngine(workers)
    if name == "ray":
        from emoscope.annotate.ray_data import RayEngine

        return RayEngine(workers)
    raise EmoscopeError(f"unknown engine {name!r}; expected 'local' or 'ray'")
