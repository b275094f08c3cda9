"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import platform
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
