"""Soak test of ``emoscope serve`` on loopback → ``benchmarks/results/serve_soak.json``.

Runs the server (as ``benchmarks/serve_load.py`` does, with its load generator) for a fixed
time at the highest error-free load of ``benchmarks/results/serve.json`` (the most clients of an
error-free phase of the chosen request shape), in windows of ``--window`` seconds, sampling the
server's resident memory after each window. Bounded by time and by a total request count; it
stops by itself. Expected: 0 errors and memory flat (max/min of the samples after the warm-up
within 10 %).

Loopback only (127.0.0.1). The client shares the machine with the server (and, here, with other
engineers' jobs: the load averages are recorded).

    nice -n 15 .venv/bin/python benchmarks/serve_soak.py                 # 10 minutes
    # a few seconds, to check that the script works (results outside the project):
    .venv/bin/python benchmarks/serve_soak.py --duration 4 --window 1 --warmup-seconds 1 \
        --recognizer lexicon --out /tmp/soak-smoke.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from _common import machine_info
from emoscope import __version__
from emoscope._io import write_json
from serve_load import _free_port, _phase, _rss_mb, _start_server, _texts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "serve_soak.json"
LOAD = ROOT / "benchmarks" / "results" / "serve.json"


def highest_error_free_clients(load: dict[str, Any], shape: str) -> int:
    """Most clients of an error-free phase of ``shape`` in a serve_load result.

    A result with several server settings (``modes``, e.g. micro-batching off and on) is read
    at the service's default setting, the one the soak runs.
    """
    if "modes" in load:
        from emoscope.serve import ServeConfig

        default = f"batch_wait_ms={ServeConfig().batch_wait_ms:g}"
        modes = load["modes"]
        phases = modes[default]["phases"] if default in modes else []
    else:
        phases = load["phases"]
    ok = [p["clients"] for p in phases if p["shape"] == shape and p["errors"] == 0]
    if not ok:
        raise SystemExit(f"no error-free {shape} phase in the load results")
    return int(max(ok))


def flat_memory(samples: list[float], tolerance: float = 0.10) -> dict[str, Any]:
    """Whether the samples stay within ``tolerance`` of their minimum."""
    lo, hi = min(samples), max(samples)
    return {
        "min": round(lo, 1),
        "max": round(hi, 1),
        "spread": round((hi - lo) / lo, 4),
        "flat": bool(hi <= lo * (1 + tolerance)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recognizer", default=None, help="recogniser (default: as serve)")
    ap.add_argument("--load", type=Path, default=LOAD, help="serve_load results to read")
    ap.add_argument("--clients", type=int, default=None, help="default: from --load")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (bound)")
    ap.add_argument("--window", type=float, default=10.0, help="seconds between memory samples")
    ap.add_argument("--warmup-seconds", type=float, default=60.0, help="not judged for memory")
    ap.add_argument("--max-requests", type=int, default=200_000, help="total requests (bound)")
    ap.add_argument("--concurrency", type=int, default=2, help="server prediction threads")
    ap.add_argument(
        "--batch-wait-ms", type=float, default=None, help="micro-batching wait (default: as serve)"
    )
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    shape = "analyze-1"
    load = json.loads(args.load.read_text(encoding="utf-8"))
    clients = args.clients or highest_error_free_clients(load, shape)
    bodies = [{"text": t} for t in _texts(4000, args.seed)]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    load_start = os.getloadavg()
    if args.batch_wait_ms is None:
        from emoscope.serve import ServeConfig

        args.batch_wait_ms = ServeConfig().batch_wait_ms
    server = _start_server(args, port, args.batch_wait_ms)
    served = httpx.get(f"{url}/v1/models", timeout=10).json()["recognizer"]["name"]
    print(f"soak: {served!r}, {clients} clients, {args.duration:.0f}s", flush=True)
    windows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    sent = 0
    try:
        rss_start = _rss_mb(server.pid)
        while time.monotonic() - t0 < args.duration and sent < args.max_requests:
            left = min(args.window, args.duration - (time.monotonic() - t0))
            res = asyncio.run(
                _phase(url, "/v1/analyze", bodies, clients, left, args.max_requests - sent)
            )
            sent += res["requests"]
            res["t"] = round(time.monotonic() - t0, 1)
            res["server_rss_mb"] = round(_rss_mb(server.pid), 1)
            windows.append(res)
            print(
                f"t={res['t']:6.1f}s {res['requests_per_second']:6.1f} req/s "
                f"p99={res['latency_ms']['p99']:.0f}ms errors={res['errors']} "
                f"rss={res['server_rss_mb']:.0f}MB",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    elapsed = time.monotonic() - t0
    errors = sum(w["errors"] for w in windows)
    ok = sum(w["ok"] for w in windows)
    after = [w["server_rss_mb"] for w in windows if w["t"] > args.warmup_seconds]
    memory = {
        "start": round(rss_start, 1),
        "end": windows[-1]["server_rss_mb"] if windows else None,
    }
    memory["after_warmup"] = flat_memory(after) if after else None
    result = {
        "benchmark": "serve_soak",
        "emoscope_version": __version__,
        "recognizer": served,
        "load": {
            "shape": shape,
            "clients": clients,
            "source": f"highest error-free {shape} phase of {args.load.name}",
        },
        "bounds": {"seconds": args.duration, "max_requests": args.max_requests},
        "seconds": round(elapsed, 1),
        "requests": ok + errors,
        "ok": ok,
        "errors_total": errors,
        "error_examples": [e for w in windows for e in w["error_examples"]][:5],
        "requests_per_second": round(ok / elapsed, 2) if elapsed else None,
        "memory_mb": memory,
        "warmup_seconds": args.warmup_seconds,
        "windows": [
            {k: w[k] for k in ("t", "requests", "errors", "requests_per_second", "server_rss_mb")}
            | {"p99_ms": w["latency_ms"]["p99"]}
            for w in windows
        ],
        "machine": machine_info(
            load_start,
            "loopback; client and server share a 2-core machine with other engineers' jobs "
            "(see the load averages), so throughput is a lower bound",
        ),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}: errors={errors}, memory {memory}")
    if errors:
        raise SystemExit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
