"""benchmarks/adapter_merge.py end to end: a tiny trained adapter, scored merged and unmerged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_helpers import load_benchmark

adapter_merge = load_benchmark("adapter_merge")


def test_merged_and_unmerged_scores_are_compared_side_by_side(
    tiny_llama: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emoscope.datasets import load_dataset
    from emoscope.llm.sft import SFTConfig, build_examples, train_lora

    monkeypatch.setattr(adapter_merge, "WORK", tmp_path / "work")
    cfg = SFTConfig(
        base_model=str(tiny_llama), prompt="zero-shot", retrieve=0, lora_r=4, lora_alpha=8,
        lr=2e-2, epochs=1, batch_size=2, grad_accum=1, device="cpu", curriculum="none",
    )  # fmt: skip
    train = load_dataset("meld", "train", root=mini_data_root).limit(6)
    adapter = tmp_path / "adapter"
    train_lora(build_examples(cfg, data=train), cfg, adapter)
    out = tmp_path / "adapter_merge.json"
    argv = ["--model", str(tiny_llama), "--data-root", str(mini_data_root), "--row", "lora"]
    assert adapter_merge.main([*argv, "--n", "6", "--rounds", "1", "--out", str(out)]) == 2
    assert not out.exists()  # the row's adapter was never trained in this work folder
    run_args = [*argv, "--adapter", str(adapter), "--n", "6", "--rounds", "2", "--out", str(out)]
    assert adapter_merge.main(run_args) == 0
    run = json.loads(out.read_text())
    assert run["n_utterances"] >= 6 and run["adapter"] == str(adapter)
    fp32 = run["fp32"]
    assert all(len(v) == 2 for v in fp32["seconds_per_utterance"].values())
    assert fp32["speedup_merged"] > 0
    # In float32 merging changes the sums' rounding only.
    assert fp32["mean_abs_logprob_diff"] < 1e-3 and fp32["argmax_agreement"] == 1.0
    assert fp32["merged_raw_accuracy"] == fp32["unmerged_raw_accuracy"]
    assert run["machine"]["cpus"] and run["threads"] == 1
    # a prompt row (no adapter), no utterances, no rounds
    for bad in (["--row", "zero-shot"], ["--n", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as err:
            adapter_merge.main([*argv, "--adapter", str(adapter), "--out", str(out), *bad])
        assert err.value.code == 2
    assert json.loads(out.read_text()) == run  # nothing written by the refused runs
