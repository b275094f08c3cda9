"""benchmarks/serve_soak.py: its helpers, and a few seconds of a real run with the lexicon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench_helpers import BENCHMARKS, load_benchmark


def test_load_level_and_flatness_helpers() -> None:
    soak = load_benchmark("serve_soak")
    load = {
        "phases": [
            {"shape": "analyze-1", "clients": 1, "errors": 0},
            {"shape": "analyze-1", "clients": 4, "errors": 0},
            {"shape": "analyze-1", "clients": 16, "errors": 3},
            {"shape": "analyze-16", "clients": 32, "errors": 0},
        ]
    }
    assert soak.highest_error_free_clients(load, "analyze-1") == 4
    with pytest.raises(SystemExit):
        soak.highest_error_free_clients(load, "dialogue-8")
    assert soak.flat_memory([100.0, 105.0, 109.9])["flat"]
    assert not soak.flat_memory([100.0, 111.0])["flat"]


def test_soak_script_runs_and_stops_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "serve_soak.py"), "--recognizer", "lexicon",
         "--duration", "3", "--window", "1", "--warmup-seconds", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["errors_total"] == 0 and res["ok"] > 0
    assert res["load"]["clients"] == 16  # the highest error-free analyze-1 level of serve.json
    assert 2.5 < res["seconds"] < 30 and len(res["windows"]) >= 2
    assert res["memory_mb"]["after_warmup"]["flat"] in (True, False)
    assert "other engineers" in res["machine"]["note"]
