"""The Ray engine: Ray Data actors, on a local Ray instance or a cluster.

Ray Data: Moritz et al. (2018), "Ray: A Distributed Framework for Emerging AI Applications",
OSDI; actors are used through ``Dataset.map_batches`` with a callable class.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from emoscope.annotate.options import ChunkResult, ChunkSpec, Job
from emoscope.annotate.worker import ChunkAnnotator
from emoscope.errors import EmoscopeError

if TYPE_CHECKING:
    from emoscope.recognizers.base import Recognizer

__all__ = ["RayChunkAnnotator", "RayEngine"]


class RayChunkAnnotator:
    """The callable class given to Ray Data ``map_batches``: one recogniser per actor."""

    def __init__(self, job: bytes) -> None:
        self.annotator = ChunkAnnotator(pickle.loads(job))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for spec in batch["spec"]:
            result = self.annotator(ChunkSpec(**json.loads(spec)))
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return {"result": out}


def _run_ray(job: Job, pending: list[ChunkSpec], workers: int | None) -> Iterator[ChunkResult]:
    try:
        import ray
        import ray.data  # its own dependencies (pandas) come with the ray[data] extra only
    except ImportError as e:
        raise EmoscopeError(f"--engine ray needs Ray Data ({e}): pip install 'ray[data]'") from None
    started = False
    if not ray.is_initialized():
        # RAY_ADDRESS (e.g. ray://head:10001 or auto) connects to a cluster; without it a local
        # instance starts and is shut down at the end.
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(
                include_dashboard=False,
                num_cpus=os.cpu_count(),
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        started = True
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)  # Ray Data's execution notes would break up our progress bar
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = ray.data.from_items(
            [{"spec": json.dumps(asdict(s))} for s in pending], override_num_blocks=len(pending)
        )
        ds = items.map_batches(
            RayChunkAnnotator,
            fn_constructor_kwargs={"job": pickle.dumps(job)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=1,
            batch_format="numpy",
        )
        try:
            for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=n):
                for blob in batch["result"]:
                    yield pickle.loads(bytes(blob))
        except ray.exceptions.RayError as e:
            raise EmoscopeError(
                f"--engine ray: an actor failed: {_ray_cause(e)} (on a cluster, emoscope, the "
                "recogniser's module and the input file must be reachable from every node)"
            ) from None
    finally:
        data_log.setLevel(level)
        if started:
            ray.shutdown()


def _ray_cause(exc: BaseException) -> str:
    """The last line of a Ray error (its text ends with the remote traceback's last line)."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else type(exc).__name__


class RayEngine:
    """Ray Data actors (one CPU and one torch thread each); ``RAY_ADDRESS`` picks a cluster."""

    name = "ray"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or 0

    def worker_threads(self, cpus: int) -> int:
        return 1

    def run(
        self, job: Job, pending: list[ChunkSpec], recognizer: Recognizer
    ) -> Iterator[ChunkResult]:
        # each actor loads its own recogniser: the one given serves this process only
        return _run_ray(job, pending, self.workers or None)
