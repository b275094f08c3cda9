"""Load test of ``emoscope serve`` on loopback → ``benchmarks/results/serve.json``.

Starts the server (uvicorn, one worker process) with the chosen recogniser, warms it up, then
for each number of concurrent clients and each request shape runs a closed loop (every client
sends its next request when the previous answer arrives) for a bounded time and request count.
Records throughput, latency percentiles, errors (non-200 answers and transport errors; the run
fails if there are any) and the server's resident memory at start, after every phase and at the
end (memory should stay flat).

Request shapes: ``analyze-1`` (one text), ``analyze-16`` (16 texts), ``dialogue-8`` (an
8-utterance dialogue). Texts come from the GoEmotions test split and dialogues from the MELD test
split when they are present under the data root (read in place, never copied), else from a
built-in list.

The client runs on the same machine, so it takes CPU from the server; on a 2-core machine the
figures are a lower bound. Without ``--recognizer`` the server uses what ``emoscope serve`` uses:
the default model (the lexicon, noted in the results, when the model is not installed).

    nice -n 15 .venv/bin/python benchmarks/serve_load.py              # the default model
    nice -n 15 .venv/bin/python benchmarks/serve_load.py --recognizer lexicon
    # a few seconds, to check that the script works (results outside the project):
    nice -n 15 .venv/bin/python benchmarks/serve_load.py --clients 1,2 --duration 1 \
        --max-requests 40 --warmup 8 --out /tmp/serve-smoke.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from _common import contention, cpu_times, machine_info
from emoscope import __version__
from emoscope._io import write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "serve.json"
FALLBACK = [
    "I love this so much, thank you!",
    "This is the worst day of my life.",
    "Wait, what? Are you serious?",
    "I'm so scared of what comes next.",
    "That is disgusting, get it away from me.",
    "Okay, see you tomorrow at nine.",
    "I can't believe you did that to me, I'm furious.",
    "We won! We actually won!",
]


def _texts(n: int, seed: int) -> list[str]:
    try:
        from emoscope.datasets import load_dataset

        texts = [e.text for e in load_dataset("goemotions", "test").examples]
    except Exception:
        texts = FALLBACK
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def _dialogues(n: int, size: int, seed: int) -> list[list[dict[str, str | None]]]:
    try:
        from emoscope.datasets import load_dataset

        ds = load_dataset("meld", "test")
        pool = [
            [{"speaker": u.speaker, "text": u.text} for u in d.utterances[:size]]
            for d in ds.dialogues or []
            if len(d) >= size
        ]
    except Exception:
        pool = []
    if not pool:
        pool = [
            [{"speaker": "AB"[i % 2], "text": FALLBACK[i % len(FALLBACK)]} for i in range(size)]
        ]
    rng = random.Random(seed)
    return [rng.choice(pool) for _ in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux: /proc/PID/statm)."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def _phase(
    url: str,
    path: str,
    bodies: list[dict[str, Any]],
    clients: int,
    duration: float,
    max_requests: int,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(c: httpx.AsyncClient, k: int) -> None:
        nonlocal sent
        i = k
        while time.monotonic() < deadline and sent < max_requests:
            sent += 1
            body = bodies[i % len(bodies)]
            i += clients
            t0 = time.perf_counter()
            try:
                r = await c.post(path, json=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                r.json()
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        await asyncio.gather(*(client(c, k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 2),
        "latency_ms": {
            "mean": round(1000 * statistics.fmean(latencies), 2) if latencies else None,
            "p50": round(1000 * _percentile(latencies, 0.50), 2),
            "p90": round(1000 * _percentile(latencies, 0.90), 2),
            "p99": round(1000 * _percentile(latencies, 0.99), 2),
            "max": round(1000 * max(latencies), 2) if latencies else None,
        },
    }


def _start_server(
    args: argparse.Namespace, port: int, batch_wait_ms: float
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "emoscope.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
        "--concurrency", str(args.concurrency), "--max-queue", "256",
        "--batch-wait-ms", str(batch_wait_ms),
    ]  # fmt: skip
    if args.recognizer:
        cmd += ["--recognizer", args.recognizer]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + args.start_timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(
                "server exited: " + (proc.stderr.read().decode() if proc.stderr else "")
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start in time")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--recognizer", default=None, help="recogniser name or dotted path (default: as serve)"
    )
    ap.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--shapes", default="analyze-1,analyze-16,dialogue-8")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per phase (bound)")
    ap.add_argument("--max-requests", type=int, default=5000, help="requests per phase (bound)")
    ap.add_argument("--warmup", type=int, default=100, help="requests before measuring")
    ap.add_argument("--concurrency", type=int, default=2, help="server prediction threads")
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--batch-wait-ms",
        default="0,2",
        help="comma-separated micro-batching waits to compare side by side (0 = off)",
    )
    ap.add_argument("--redo", action="store_true", help="re-measure settings already in --out")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    waits = [float(x) for x in args.batch_wait_ms.split(",") if x.strip()]
    previous = _read_previous(args.out)
    modes: dict[str, Any] = {}
    for wait in waits:
        key = f"batch_wait_ms={wait:g}"
        same = previous.get(key, {}).get("bounds") == _bounds(args)
        if same and not args.redo:
            print(f"skip {key}: already in {args.out} (--redo to measure again)", flush=True)
            modes[key] = previous[key]
            continue
        modes[key] = _run_one(args, wait)
        write_json(args.out, _summary(modes))
        if modes[key]["errors_total"]:
            raise SystemExit(f"{modes[key]['errors_total']} requests failed ({key})")


def _bounds(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "seconds_per_phase": args.duration,
        "max_requests_per_phase": args.max_requests,
        "clients": args.clients,
        "shapes": args.shapes,
    }


def _read_previous(out: Path) -> dict[str, Any]:
    import json

    if not out.is_file():
        return {}
    modes: dict[str, Any] = json.loads(out.read_text("utf-8")).get("modes", {})
    return modes


def _summary(modes: dict[str, Any]) -> dict[str, Any]:
    """All settings, and req/s of each phase relative to micro-batching off."""
    base = modes.get("batch_wait_ms=0")
    ratios: dict[str, Any] = {}
    if base:
        ref = {(p["shape"], p["clients"]): p for p in base["phases"]}
        for key, mode in modes.items():
            ratios[key] = {
                f"{p['shape']}@{p['clients']}": round(
                    p["requests_per_second"]
                    / ref[(p["shape"], p["clients"])]["requests_per_second"],
                    2,
                )
                for p in mode["phases"]
                if (p["shape"], p["clients"]) in ref
            }
    return {
        "benchmark": "serve_load",
        "emoscope_version": __version__,
        "modes": modes,
        "requests_per_second_vs_batching_off": ratios,
        "note": "Each setting is its own server process, measured one after another in one run "
        "of this script; see each mode's machine.load_average_* for other jobs on the CPU.",
    }


def _run_one(args: argparse.Namespace, batch_wait_ms: float) -> dict[str, Any]:
    """Start a server with this micro-batching setting, load it, and describe the run."""

    texts = _texts(4000, args.seed)
    dialogues = _dialogues(200, 8, args.seed)
    shapes: dict[str, tuple[str, list[dict[str, Any]]]] = {
        "analyze-1": ("/v1/analyze", [{"text": t} for t in texts]),
        "analyze-16": (
            "/v1/analyze",
            [{"texts": texts[i : i + 16]} for i in range(0, len(texts) - 16, 16)],
        ),
        "dialogue-8": ("/v1/dialogue", [{"utterances": d} for d in dialogues]),
    }
    per_request = {"analyze-1": 1, "analyze-16": 16, "dialogue-8": 8}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    load_start = os.getloadavg()
    stat_start = cpu_times()
    t_start = time.monotonic()
    server = _start_server(args, port, batch_wait_ms)
    start_seconds = time.monotonic() - t_start
    pid = server.pid
    served = httpx.get(f"{url}/v1/models", timeout=10).json()["recognizer"]["name"]
    print(f"server up in {start_seconds:.1f}s with the {served!r} recogniser", flush=True)
    phases: list[dict[str, Any]] = []
    try:
        asyncio.run(_phase(url, "/v1/analyze", shapes["analyze-1"][1], 2, 60, args.warmup))
        asyncio.run(_phase(url, "/v1/dialogue", shapes["dialogue-8"][1], 2, 60, args.warmup // 4))
        rss_start = _rss_mb(pid)
        rss_peak = rss_start
        for shape in args.shapes.split(","):
            path, bodies = shapes[shape]
            for n in (int(x) for x in args.clients.split(",")):
                res = asyncio.run(_phase(url, path, bodies, n, args.duration, args.max_requests))
                res["shape"] = shape
                res["texts_per_second"] = round(res["requests_per_second"] * per_request[shape], 1)
                res["server_rss_mb"] = round(_rss_mb(pid), 1)
                rss_peak = max(rss_peak, res["server_rss_mb"])
                phases.append(res)
                lat = res["latency_ms"]
                print(
                    f"{shape:>11} clients={n:>3} {res['requests_per_second']:8.1f} req/s "
                    f"p50={lat['p50']:.1f}ms p99={lat['p99']:.1f}ms errors={res['errors']} "
                    f"rss={res['server_rss_mb']:.0f}MB",
                    flush=True,
                )
        rss_end = _rss_mb(pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = sum(p["errors"] for p in phases)
    growth = rss_end - rss_start
    result = {
        "benchmark": "serve_load",
        "emoscope_version": __version__,
        "recognizer": served,
        "server": {
            "engine": "uvicorn, 1 worker process",
            "prediction_threads": args.concurrency,
            "start_seconds": round(start_seconds, 2),
            "batch_wait_ms": batch_wait_ms,
        },
        "bounds": _bounds(args),
        "machine": machine_info(
            load_start,
            "client and server share the machine; the load averages show whether other jobs "
            "shared the CPU",
        ),
        "texts": "GoEmotions test / MELD test (read in place) when present, else built-in",
        "phases": phases,
        "errors_total": errors,
        "memory_mb": {
            "start": round(rss_start, 1),
            "peak": round(rss_peak, 1),
            "end": round(rss_end, 1),
            "growth": round(growth, 1),
            "flat": bool(growth < max(20.0, 0.1 * rss_start)),
        },
    }
    load_end = os.getloadavg()
    result.update(contention(load_start, load_end, stat_start, cpu_times()))
    print(
        f"batch_wait_ms={batch_wait_ms:g}: errors={errors}, rss {rss_start:.0f} -> {rss_end:.0f} MB"
    )
    return result


if __name__ == "__main__":
    main()
