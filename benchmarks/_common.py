"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any


def machine_info(load_start: Sequence[float], note: str) -> dict[str, Any]:
    """CPU count, thread setting, niceness, Python, platform and the load averages around a run.

    ``load_start`` is :func:`os.getloadavg` taken before the run; the end value is read now.
    """
    return {
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "niceness": os.nice(0),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "note": note,
    }


def summarise(runs: list[dict[str, Any]], group: str, keys: Sequence[str]) -> dict[str, Any]:
    """Mean and sample sd (0 for one seed) of ``keys`` over the runs of each ``group`` value."""
    out: dict[str, Any] = {}
    for value in sorted({r[group] for r in runs}):
        rows = [r for r in runs if r[group] == value]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in rows]}
        for key in keys:
            vals = [float(r[key]) for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            entry[key] = {"mean": statistics.fmean(vals), "sd": sd}
        out[value] = entry
    return out
