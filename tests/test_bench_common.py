"""The helpers shared by the benchmark scripts (``benchmarks/_common.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bench_helpers import load_benchmark

common = load_benchmark("_common")


def test_parse_seeds_accepts_a_list_and_rejects_junk() -> None:
    ap = argparse.ArgumentParser()
    assert common.parse_seeds(ap, "13, 14,") == [13, 14]
    for bad in ("x", ","):
        with pytest.raises(SystemExit) as exc:
            common.parse_seeds(ap, bad)
        assert exc.value.code == 2


def test_run_grid_writes_after_each_run_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "grid.json"
    calls: list[tuple[str, int]] = []

    def run_one(value: str, seed: int, folder: Path) -> dict[str, Any]:
        assert not folder.exists()  # a fresh folder inside a temporary directory
        calls.append((value, seed))
        return {"v": value, "seed": seed, "score": seed / 100}

    setup = {"epochs": 1}
    summary = common.run_grid(
        out, setup, lambda old: old == setup, "v", ["a"], [1, 2], ["score"], run_one
    )
    assert calls == [("a", 1), ("a", 2)]
    assert summary["a"]["seeds"] == [1, 2]
    assert summary["a"]["score"]["mean"] == pytest.approx(0.015)
    assert json.loads(out.read_text())["setup"] == setup

    # same setup: finished pairs are skipped, new ones added
    common.run_grid(out, setup, lambda old: old == setup, "v", ["a", "b"], [1], ["score"], run_one)
    assert calls[2:] == [("b", 1)]
    assert len(json.loads(out.read_text())["runs"]) == 3

    # another setup: earlier runs are dropped and everything reruns
    other = {"epochs": 2}
    summary = common.run_grid(
        out, other, lambda old: old == other, "v", ["a"], [1], ["score"], run_one
    )
    assert calls[3:] == [("a", 1)]
    assert json.loads(out.read_text())["runs"] == [{"v": "a", "seed": 1, "score": 0.01}]
    assert summary["a"]["seeds"] == [1]
