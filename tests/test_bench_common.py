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


def test_a_checkpoint_copy_keeps_whole_lines_and_restores_only_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RAW", tmp_path / "raw")
    ckpt = tmp_path / "work" / "rows.jsonl"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3, "cut')  # a write cut mid-line
    common.save_checkpoint(ckpt, "bench/rows.jsonl")
    copy = tmp_path / "raw" / "bench" / "rows.jsonl.gz"
    first = copy.read_bytes()
    common.save_checkpoint(ckpt, "bench/rows.jsonl")
    assert copy.read_bytes() == first  # reproducible bytes: no time stamp in the gzip header
    assert not common.restore_checkpoint(ckpt, "bench/rows.jsonl")  # the file exists: kept
    ckpt.unlink()
    assert common.restore_checkpoint(ckpt, "bench/rows.jsonl")
    assert ckpt.read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    assert not common.restore_checkpoint(tmp_path / "other.jsonl", "bench/none.jsonl")
    meta = tmp_path / "work" / "meta.json"
    meta.write_text('{"seconds": 1.5}')  # JSON without a final newline is kept whole
    common.save_checkpoint(meta, "bench/meta.json")
    meta.unlink()
    assert common.restore_checkpoint(meta, "bench/meta.json")
    assert meta.read_text() == '{"seconds": 1.5}'
    common.save_checkpoint(tmp_path / "missing.jsonl", "bench/missing.jsonl")  # nothing to keep
    assert not (tmp_path / "raw" / "bench" / "missing.jsonl.gz").exists()


def test_bf16_note_names_what_the_cpu_has(monkeypatch: pytest.MonkeyPatch) -> None:
    for isa, word in (({"amx_bf16": True}, "AMX tiles"), ({"avx512_bf16": True}, "no AMX"),
                      ({}, "no native bf16")):  # fmt: skip
        monkeypatch.setattr(common, "cpu_info", lambda isa=isa: {"isa": isa})
        assert word in common.bf16_note()
