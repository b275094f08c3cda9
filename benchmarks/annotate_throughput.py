"""Throughput of ``emoscope annotate`` → ``benchmarks/results/annotate.json``.

Builds a 100,000-row CSV in a scratch folder (default ``/tmp/emoscope-annotate-bench``; never in
the project) from the GoEmotions texts and the MELD / EmoryNLP utterances found under the data
root, cycling through them, and annotates it with each engine:

- ``local-1``: one process (the recogniser loaded in the driver);
- ``local-N``: N worker processes (``--workers``, default the CPU count);
- ``ray-N``: Ray Data ``map_batches`` with N actors on a local Ray instance (the time to start
  Ray is measured apart; actor start-up is inside the run; ``RAY_worker_niceness=0`` so that
  the actors run at the same priority as the local engine's workers);
- ``dialogue-local-N``: the MELD/EmoryNLP rows read as dialogues (``--dialogue-col``).

Every run must write all rows; the text-mode outputs of all engines must be byte-identical.

Without ``--recognizer`` the default model is used, as by ``emoscope annotate`` (the lexicon,
noted in the results, when the model is not installed).

    nice -n 15 .venv/bin/python benchmarks/annotate_throughput.py          # the default model
    nice -n 15 .venv/bin/python benchmarks/annotate_throughput.py --recognizer lexicon
    # a quick check that the script works (results outside the project):
    nice -n 15 .venv/bin/python benchmarks/annotate_throughput.py --rows 500 --chunk-size 100 \
        --out /tmp/annotate-smoke.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from _common import machine_info
from emoscope import __version__
from emoscope._io import write_json
from emoscope.annotate import AnnotateOptions, annotate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "annotate.json"


def _sources() -> tuple[list[str], list[tuple[str, str, str]]]:
    """GoEmotions texts, and (dialogue id, speaker, text) turns of MELD and EmoryNLP."""
    from emoscope.datasets import load_dataset

    texts: list[str] = []
    for split in ("train", "dev", "test"):
        try:
            texts += [e.text for e in load_dataset("goemotions", split).examples]
        except Exception as e:
            print(f"goemotions {split}: {e}")
    turns: list[tuple[str, str, str]] = []
    for name in ("meld", "emorynlp"):
        for split in ("train", "dev", "test"):
            try:
                ds = load_dataset(name, split)
            except Exception as e:
                print(f"{name} {split}: {e}")
                continue
            for k, d in enumerate(ds.dialogues or []):
                did = f"{name}-{split}-{d.id or k}"
                turns += [(did, u.speaker or "", u.text) for u in d.utterances]
    if not texts and not turns:
        raise SystemExit("no dataset found under the data root; see /work/shared/README.md")
    return texts, turns


def build_inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    """Write the text-mode and dialogue-mode CSV files (``rows`` rows each)."""
    texts, turns = _sources()
    pool = texts + [t for _, _, t in turns]
    text_path, dialogue_path = folder / "texts.csv", folder / "dialogues.csv"
    with open(text_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        for i in range(rows):
            w.writerow([i, pool[i % len(pool)]])
    with open(dialogue_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "dialogue", "speaker", "text"])
        i = 0
        rep = 0
        while i < rows:
            for did, speaker, text in turns:
                if i >= rows:
                    break
                w.writerow([i, f"{did}#{rep}", speaker, text])
                i += 1
            rep += 1
    return text_path, dialogue_path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _run(
    name: str, src: Path, out: Path, opts: AnnotateOptions, engine: str, workers: int
) -> dict[str, Any]:
    t0 = time.monotonic()
    res = annotate(src, out, opts, engine=engine, workers=workers, progress=False)
    total = time.monotonic() - t0
    row = {
        "run": name,
        "engine": engine,
        "workers": workers,
        "mode": "dialogue" if opts.dialogue_col else "text",
        "rows": res.rows,
        "written": res.written,
        "bad_rows": res.bad,
        "chunks": res.chunks,
        "annotate_seconds": round(res.seconds, 2),
        "total_seconds": round(total, 2),
        "rows_per_second": round(res.rows / res.seconds, 1),
        "rows_per_second_total": round(res.rows / total, 1),
        "output_sha256": file_sha256(out),
    }
    print(
        f"{name:>18}: {row['rows_per_second']:9.1f} rows/s "
        f"({row['annotate_seconds']:.1f}s; {row['total_seconds']:.1f}s with planning and "
        f"concatenation), bad rows {res.bad}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recognizer", default=None, help="default: as emoscope annotate")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--runs", default="local-1,local-N,ray-N,dialogue-local-N")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/emoscope-annotate-bench"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    if args.recognizer is None:
        from emoscope.recognizers.default import default_recognizer_name

        args.recognizer = default_recognizer_name()
    print(f"recogniser: {args.recognizer}", flush=True)
    args.scratch.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    text_path, dialogue_path = build_inputs(args.scratch, args.rows)
    opts = AnnotateOptions(recognizer=args.recognizer, chunk_size=args.chunk_size)
    dopts = AnnotateOptions(
        recognizer=args.recognizer,
        chunk_size=args.chunk_size,
        dialogue_col="dialogue",
        speaker_col="speaker",
    )
    n = args.workers
    results: list[dict[str, Any]] = []
    ray_init = None
    for run in args.runs.split(","):
        out = args.scratch / f"{run}.csv"
        if run == "local-1":
            results.append(_run(run, text_path, out, opts, "local", 1))
        elif run == "local-N":
            results.append(_run(f"local-{n}", text_path, out, opts, "local", n))
        elif run == "ray-N":
            import ray

            # Ray lowers its workers' priority by 15 by default; under `nice -n 15` that would
            # starve them next to the local engine's workers, so keep the driver's priority.
            os.environ.setdefault("RAY_worker_niceness", "0")
            t0 = time.monotonic()
            ray.init(include_dashboard=False, num_cpus=os.cpu_count(), log_to_driver=False)
            ray_init = round(time.monotonic() - t0, 2)
            try:
                results.append(_run(f"ray-{n}", text_path, out, opts, "ray", n))
            finally:
                ray.shutdown()
        elif run == "dialogue-local-N":
            results.append(_run(f"dialogue-local-{n}", dialogue_path, out, dopts, "local", n))
        else:
            raise SystemExit(f"unknown run {run!r}")
        out.unlink()
        out.with_name(out.name + ".bad-rows.jsonl").unlink()
    text_runs = [r for r in results if r["mode"] == "text"]
    identical = len({r["output_sha256"] for r in text_runs}) <= 1
    complete = all(r["written"] == r["rows"] == args.rows for r in results)
    write_json(
        args.out,
        {
            "benchmark": "annotate_throughput",
            "emoscope_version": __version__,
            "recognizer": args.recognizer,
            "rows": args.rows,
            "chunk_size": args.chunk_size,
            "input": "CSV built in a scratch folder from GoEmotions texts and MELD/EmoryNLP "
            "utterances (cycled); deleted or left in the scratch folder, never committed",
            "ray_init_seconds": ray_init,
            "runs": results,
            "text_outputs_identical_across_engines": identical,
            "all_rows_written": complete,
            "machine": machine_info(
                load_start, "the load averages show whether other jobs shared the CPU"
            ),
        },
    )
    shutil.rmtree(args.scratch, ignore_errors=True)
    print(f"wrote {args.out}; outputs identical across engines: {identical}")
    if not (identical and complete):
        raise SystemExit("a run lost rows or engines disagree")


if __name__ == "__main__":
    main()
