"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emoscope._io import write_json

#: Where long benchmark runs keep their caches and checkpoints (outside the repository).
WORK = Path(os.environ.get("EMOSCOPE_BENCH_WORK") or Path.home() / ".cache" / "emoscope" / "bench")


#: CPU flags that decide how much bf16 and int8 gain (AMX tiles, AVX-512 BF16 / VNNI).
_ISA_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


#: Committed gzip copies of benchmark checkpoints (per-item JSONL records), so a run cut by the
#: end of a session resumes on a new machine from what was committed.
RAW = Path(__file__).resolve().parent / "results" / "raw"


def restore_checkpoint(path: Path, key: str) -> bool:
    """Write ``results/raw/<key>.gz`` to ``path`` if ``path`` does not exist; whether it did."""
    copy = RAW / f"{key}.gz"
    if path.exists() or not copy.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(gzip.decompress(copy.read_bytes()))
    tmp.replace(path)
    return True


def save_checkpoint(path: Path, key: str) -> None:
    """Keep a gzip copy of the checkpoint ``path`` as ``results/raw/<key>.gz``, replaced
    atomically; of a ``.jsonl`` file only its whole lines (a cut last line is left out).
    Reproducible bytes: no name or time stamp."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if path.suffix == ".jsonl":
        data = data[: data.rfind(b"\n") + 1]
    dest = RAW / f"{key}.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    tmp.replace(dest)


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and which of the bf16/int8-relevant instruction sets it has
    (from ``/proc/cpuinfo``; empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu_model": fields.get("model name", platform.processor()),
        "isa": {f: f in flags for f in _ISA_FLAGS},
    }


def bf16_note() -> str:
    """One sentence on what bf16 autocast can gain on this CPU, from its instruction sets."""
    isa = cpu_info().get("isa", {})
    # Hardware facts only: what the speed-up is for a given model is measured, not assumed
    # (for a 135M model the bf16/fp32 ratio was smaller on an AMX Xeon than on an AVX-512 BF16
    # EPYC, whose fp32 was far slower: llm_meld.json's precision checks).
    if isa.get("amx_bf16"):
        return (
            "bf16 autocast runs on AMX tiles here; CPUs without AMX have slower bf16 matrix "
            "units, and the gain depends on the model's size"
        )
    if isa.get("avx512_bf16"):
        return (
            "bf16 autocast runs on AVX-512 BF16 here (no AMX); CPUs without native bf16 "
            "emulate it, slower than fp32"
        )
    return "this CPU has no native bf16 instructions; bf16 autocast may be slower than fp32"


def machine_info(load_start: Sequence[float], note: str) -> dict[str, Any]:
    """CPU model and instruction sets, CPU count, thread setting, niceness, Python, platform and
    the load averages around a run.

    ``load_start`` is :func:`os.getloadavg` taken before the run; the end value is read now.
    """
    return {
        **cpu_info(),
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


def parse_seeds(ap: argparse.ArgumentParser, text: str) -> list[int]:
    """``"13,14"`` -> ``[13, 14]``; a usage error (exit 2) for anything else or for none."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds should be comma-separated integers, got {text!r}")
    if not seeds:
        ap.error("--seeds needs at least one seed")
    return seeds


def add_training_options(ap: argparse.ArgumentParser, out: Path, epochs: int) -> None:
    """The options every training ablation has (``--epochs`` defaulting to ``epochs``,
    ``--limit``, ``--data-root``, ``--base-model``, ``--threads``, ``--out`` defaulting to
    ``out``, ``--verbose``)."""
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--limit", type=int, default=None, help="Smoke test: first N per split.")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--base-model", default=None, help="Default: all-MiniLM-L6-v2.")
    ap.add_argument("--threads", type=int, default=2, help="torch threads.")
    ap.add_argument("--out", type=Path, default=out)
    ap.add_argument("--verbose", action="store_true", help="Print training progress.")


def training_setup(
    args: argparse.Namespace, dataset: str, model: str, **extra: Any
) -> dict[str, Any]:
    """The ``setup`` record of a training ablation: what was trained, on what, with what options
    (:func:`add_training_options`), on which machine, then ``extra``."""
    from emoscope.training import TrainConfig

    return {
        "dataset": dataset,
        "model": model,
        "base_model": args.base_model or TrainConfig.base_model,
        "epochs": args.epochs,
        "limit": args.limit,
        **extra,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": args.threads,
    }


def parse_choices(
    ap: argparse.ArgumentParser, text: str, allowed: Sequence[str], what: str
) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each from ``allowed``; a usage error (exit 2) otherwise."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in allowed]
    if bad or not chosen:
        ap.error(f"need {what} from {', '.join(allowed)}; got {bad or 'none'}")
    return chosen


def train_and_test(
    tc: Any, folder: Path, args: argparse.Namespace, task: str
) -> tuple[dict[str, Any], int, Any, float]:
    """Train ``tc`` (a ``TrainConfig``; ``--base-model`` applied) into ``folder``, then evaluate
    the saved model on ``task``'s test split: the training log, the index of the best epoch by
    dev score, the evaluation result and the training seconds."""
    from emoscope.datasets import load_dataset
    from emoscope.evaluate import evaluate
    from emoscope.recognizers.encoder import EncoderRecognizer
    from emoscope.training import train

    if args.base_model:
        tc.base_model = args.base_model
    t0 = time.perf_counter()
    log = train(tc, folder, progress=print if args.verbose else None)
    train_s = time.perf_counter() - t0
    best = max(range(len(log["epochs"])), key=lambda i: log["epochs"][i]["dev_score"])
    test = load_dataset(task, "test", args.data_root)
    result = evaluate(EncoderRecognizer(folder), test, progress=False, limit=args.limit)
    assert result.classification is not None
    return log, best, result, train_s


def run_grid(
    out: Path,
    setup: dict[str, Any],
    resumes: Callable[[dict[str, Any]], bool],
    group: str,
    values: Sequence[str],
    seeds: Sequence[int],
    keys: Sequence[str],
    run_one: Callable[[str, int, Path], dict[str, Any]],
) -> dict[str, Any]:
    """Run every (value, seed) pair not yet in ``out``; return the summary over all runs.

    Each run trains into a temporary folder (``run_one(value, seed, folder)``) and
    ``{setup, runs, summary}`` is written to ``out`` after every run, so an interrupted
    ablation keeps what it finished and a rerun skips it. The runs already in ``out`` are kept
    only when ``resumes(their setup)`` says they were made the same way.
    """
    previous = json.loads(out.read_text("utf-8")) if out.is_file() else {}
    runs: list[dict[str, Any]] = (
        list(previous.get("runs", [])) if resumes(previous.get("setup", {})) else []
    )
    done = {(r[group], r["seed"]) for r in runs}
    for seed in seeds:
        for value in values:
            if (value, seed) in done:
                print(f"skip {value} seed {seed}: already in {out}")
                continue
            with tempfile.TemporaryDirectory(prefix="emoscope-ablation-") as tmp:
                row = run_one(value, seed, Path(tmp) / "model")
            print(json.dumps(row), flush=True)
            runs.append(row)
            write_json(out, {"setup": setup, "runs": runs, "summary": summarise(runs, group, keys)})
    return summarise(runs, group, keys)


def run_parts(
    out: Path,
    header: dict[str, Any],
    parts: Sequence[str],
    run_part: Callable[[str], dict[str, Any]],
    redo: Sequence[str] = (),
) -> dict[str, Any]:
    """Run each named part not yet in ``out`` (or named in ``redo``) and checkpoint after each.

    Every part's result gets the load averages before and after it and ``contended`` (the
    1-minute load average exceeded the CPU count at either end: other jobs shared the CPU), so
    a result measured on a busy machine says so, and a rerun on a quiet one redoes only what is
    asked (``--redo``) or missing.
    """
    previous = json.loads(out.read_text("utf-8")) if out.is_file() else {}
    results: dict[str, Any] = dict(previous.get("parts", {}))
    for name in parts:
        if name in results and name not in redo and not results[name].get("failed"):
            print(f"skip {name}: already in {out} (--redo {name} to measure again)", flush=True)
            continue
        before, stat0 = os.getloadavg(), cpu_times()
        result = run_part(name)
        after, stat1 = os.getloadavg(), cpu_times()
        result["load_average_before"] = [round(x, 2) for x in before]
        result["load_average_after"] = [round(x, 2) for x in after]
        result.update(contention(before, after, stat0, stat1))
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result["cpu_model"] = cpu_info().get("cpu_model")
        results[name] = result
        print(name, json.dumps(result)[:400], flush=True)
        write_json(out, {**header, "parts": results})
    return results


def cpu_times() -> list[int] | None:
    """The machine's cumulative CPU ticks (user, nice, system, idle, ...) from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None


def contention(
    before: tuple[float, ...],
    after: tuple[float, ...],
    stat0: list[int] | None,
    stat1: list[int] | None,
) -> dict[str, Any]:
    """Whether other jobs shared the CPU during a part, honestly enough to quote.

    A benchmark run at a higher priority (negative ``nice``; the kernel's autogroup scheduling
    off, so niceness counts across sessions) while other jobs run niced gets nearly all the CPU
    it asks for: the time the niced jobs got during the part is then recorded
    (``niced_jobs_cpu_share``, the /proc/stat ``nice`` column over all busy time). The part is
    ``contended`` when the load average exceeded 0.75 per CPU and the benchmark was not
    prioritised, or when the niced jobs still took more than a quarter of the busy time.
    """
    niceness = os.nice(0)
    busy_load = max(before[0], after[0]) > (os.cpu_count() or 1) * 0.75
    out: dict[str, Any] = {"niceness": niceness}
    share = None
    if stat0 and stat1:
        d = [b - a for a, b in zip(stat0, stat1, strict=False)]
        busy = d[0] + d[1] + d[2]
        share = round(d[1] / busy, 3) if busy else 0.0
        out["niced_jobs_cpu_share"] = share
    prioritised = niceness < 0 and _autogroup_off()
    out["contended"] = bool((busy_load and not prioritised) or (share or 0) > 0.25)
    return out


def _autogroup_off() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled", encoding="ascii") as f:
            return f.read().strip() == "0"
    except OSError:
        return True


# distilroberta-base's shape (the architecture of the most used English emotion classifier), for
# randomly initialised speed-only peers.
DISTILROBERTA_BASE: dict[str, Any] = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
}
