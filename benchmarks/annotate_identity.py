"""Does today's ``emoscope annotate`` write the same bytes as before the performance work?

Issue 16 asks that annotate's speed-ups leave its output byte-identical. The default backend
changed from float32 to bf16 autocast in the same work, so the check has two parts, on the
100,000-row text file of :mod:`annotate_throughput` (built the same way):

- ``before``: the CLI of a checkout of the code before the work (``--before``, a source folder
  whose default backend is float32), 2 workers;
- ``fp32``: today's CLI with ``EMOSCOPE_BACKEND=torch`` (float32), 2 workers, which must write
  every column of ``before`` identically, row by row (issue 13 added ``pred_language`` and
  ``pred_warnings`` columns since, so the files as a whole differ);
- ``default``: today's CLI at its default (bf16 autocast), 2 workers, compared row by row with
  ``before`` (label agreement, largest probability difference): not byte-identical by design.

Each output is written once to the scratch folder and reused when present (resumable).

    nice -n 10 .venv/bin/python benchmarks/annotate_identity.py --before /work/wt_before/src
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_info
from annotate_throughput import build_inputs, file_sha256
from emoscope._io import write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "annotate_identity.json"


def _annotate(src_dir: Path, inp: Path, out: Path, backend: str | None) -> float:
    """Run ``emoscope annotate`` from the sources in ``src_dir``; seconds taken (0 if reused)."""
    if out.is_file():
        return 0.0
    env = dict(os.environ, PYTHONPATH=str(src_dir), OMP_NUM_THREADS="1")
    env.pop("EMOSCOPE_BACKEND", None)
    if backend:
        env["EMOSCOPE_BACKEND"] = backend
    cmd = [sys.executable, "-m", "emoscope.cli", "annotate", str(inp), str(out),
           "--workers", "2", "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=src_dir.parent)
    return time.perf_counter() - t0


def compare_rows(a: Path, b: Path) -> dict[str, Any]:
    """Row-by-row agreement of two annotate CSV outputs of the same input: columns added in
    ``b``, rows whose every column of ``a`` is written identically in ``b``, labels, probs."""
    n = same_label = same_row = 0
    max_diff = 0.0
    with a.open(newline="", encoding="utf-8") as fa, b.open(newline="", encoding="utf-8") as fb:
        da, db = csv.DictReader(fa), csv.DictReader(fb)
        for ra, rb in zip(da, db, strict=True):
            n += 1
            same_row += all(rb.get(k) == v for k, v in ra.items())
            same_label += ra["pred_label"] == rb["pred_label"]
            pa, pb = json.loads(ra["pred_probs"]), json.loads(rb["pred_probs"])
            max_diff = max(max_diff, max(abs(pa[k] - pb[k]) for k in pa))
        added = [c for c in db.fieldnames or [] if c not in (da.fieldnames or [])]
    return {
        "rows": n,
        "columns_added": added,
        "rows_identical_on_old_columns": same_row,
        "label_agreement": same_label / n if n else 0.0,
        "max_prob_diff": max_diff,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="src folder of the old code")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/emoscope-annotate-identity"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--skip-default", action="store_true", help="only the float32 identity, not bf16"
    )
    args = ap.parse_args()

    load_start = os.getloadavg()
    args.scratch.mkdir(parents=True, exist_ok=True)
    text_path, _ = build_inputs(args.scratch, args.rows)
    today = ROOT / "src"
    runs = {
        "before": (args.before, None),
        "fp32": (today, "torch"),
        "default": (today, None),
    }
    if args.skip_default:
        del runs["default"]
    seconds: dict[str, float] = {}
    for name, (src, backend) in runs.items():
        seconds[name] = round(_annotate(src, text_path, args.scratch / f"{name}.csv", backend), 1)
        print(f"{name}: {seconds[name]} s", flush=True)
    digests = {name: file_sha256(args.scratch / f"{name}.csv") for name in runs}
    result = {
        "rows": args.rows,
        "before_source": str(args.before),
        "sha256": digests,
        "fp32_byte_identical_to_before": digests["fp32"] == digests["before"],
        "fp32_vs_before": compare_rows(args.scratch / "before.csv", args.scratch / "fp32.csv"),
        "default_byte_identical_to_before": None
        if args.skip_default
        else digests["default"] == digests["before"],
        "default_vs_before": None
        if args.skip_default
        else compare_rows(args.scratch / "before.csv", args.scratch / "default.csv"),
        "seconds": seconds,
        "note": "seconds are 0 for outputs reused from an earlier run; throughput is measured "
        "in annotate.json, not here",
        "machine": machine_info(
            load_start, "2-core machine shared with other jobs (a background LLM job, a test run)"
        ),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    same = result["fp32_vs_before"]
    if same["rows_identical_on_old_columns"] != same["rows"]:
        raise SystemExit("today's float32 output differs from the code before")


if __name__ == "__main__":
    main()
