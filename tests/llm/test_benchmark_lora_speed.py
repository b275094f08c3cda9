"""benchmarks/lora_speed.py end to end on a tiny random Llama and the mini MELD fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_helpers import load_benchmark

lora_speed = load_benchmark("lora_speed")


def test_padded_share_counts_the_pad_slots() -> None:
    lengths = [4, 2, 3, 3]
    assert lora_speed.padded_share(lengths, [[0, 1], [2, 3]]) == pytest.approx(1 - 12 / 14)
    assert lora_speed.padded_share(lengths, [[2, 3], [0], [1]]) == 0.0


def test_a_run_times_the_four_variants_and_keeps_other_thread_entries(
    tiny_llama: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora_speed.json"
    out.write_text(json.dumps({"runs": {"threads=2": {"kept": True}}}))
    argv = ["--model", str(tiny_llama), "--data-root", str(mini_data_root), "--n", "8"]
    assert lora_speed.main([*argv, "--rounds", "1", "--train-n", "20", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["runs"]["threads=2"] == {"kept": True}
    run = res["runs"]["threads=1"]
    assert run["n_items_timed"] == 8 and run["train_items"] >= 20
    assert set(run["seconds_per_item_median"]) == set(lora_speed.VARIANTS)
    assert all(s > 0 for s in run["seconds_per_item_median"].values())
    assert run["speedup_vs_full_head"]["full-head"] == 1.0
    pad = run["padded_share_of_train_tokens"]
    assert 0 <= pad["grouped"] < pad["ungrouped"] < 1
    assert "answer-loss+grouped+bf16" in lora_speed.VARIANTS
    loss = run["first_batch_loss"]  # bf16 rounds, but it is the same loss
    assert loss["fp32"] > 0 and loss["bf16"] == pytest.approx(loss["fp32"], rel=0.05)
