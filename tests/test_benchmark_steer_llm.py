"""The per-emotion checkpoints of benchmarks/steer_llm.py (the run itself is a benchmark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench_helpers import load_benchmark

steer_llm = load_benchmark("steer_llm")


def test_grid_points_resume_per_emotion_and_drop_a_cut_chunk(tmp_path: Path) -> None:
    path = tmp_path / "steer_L12-12_a4.jsonl"
    calls: list[str] = []

    def make(target: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        calls.append(target)
        rows = [{"prompt_id": i, "target": target, "reply": f"{target} {i}"} for i in range(3)]
        return rows, {"seconds": 1.5, "load": "x"}

    def cut(target: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if target == "fear":
            raise KeyboardInterrupt  # the session ends inside the second chunk
        return make(target)

    with pytest.raises(KeyboardInterrupt):
        steer_llm.run_chunks(path, ["joy", "fear", "anger"], 3, cut)
    # a cut write of the fear chunk: one line of it on disk
    with path.open("a") as f:
        f.write(json.dumps({"prompt_id": 0, "target": "fear", "reply": "half"}) + "\n")
    calls.clear()
    kept: list[int] = []
    rows = steer_llm.run_chunks(
        path,
        ["joy", "fear", "anger"],
        3,
        make,
        lambda: kept.append(len(path.read_text().splitlines())),
    )
    assert kept == [6, 9]  # a copy is kept after each finished chunk
    assert calls == ["fear", "anger"]  # joy was done; the half fear chunk is redone
    assert [r["target"] for r in rows] == ["joy"] * 3 + ["fear"] * 3 + ["anger"] * 3
    assert "half" not in path.read_text()
    meta = json.loads(path.with_suffix(".meta.json").read_text())
    assert meta == {"seconds": 4.5, "load": "x"}  # three chunks' seconds summed
    calls.clear()
    assert steer_llm.run_chunks(path, ["joy", "fear", "anger"], 3, make) == rows
    assert calls == []
    with pytest.raises(RuntimeError, match="expected 4"):
        steer_llm.run_chunks(tmp_path / "other.jsonl", ["joy"], 4, make)
