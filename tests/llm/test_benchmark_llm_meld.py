"""The pure parts of benchmarks/llm_meld.py: subsets, per-utterance resume, the summary (the
real run is a benchmark); scoring rows on a tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench_helpers import load_benchmark
from emoscope.datasets import load_dataset

llm_meld = load_benchmark("llm_meld")


def test_subsets_are_fixed_whole_dialogues(mini_data_root: Path) -> None:
    data = load_dataset("meld", "train", root=mini_data_root)
    sub = llm_meld.select_dialogues(data, 20, seed=0)
    assert len(sub) >= 20 and len(sub) < len(data)
    ids = {d.id for d in sub.dialogues}
    # whole dialogues, in file order, and the examples line up with them
    assert [e.dialogue.id for e in sub.examples] == [d.id for d in sub.dialogues for _ in d]
    assert sum(len(d) for d in sub.dialogues) == len(sub)
    assert [d.id for d in data.dialogues if d.id in ids] == [d.id for d in sub.dialogues]
    again = llm_meld.select_dialogues(data, 20, seed=0)
    assert [e.id for e in again.examples] == [e.id for e in sub.examples]
    other = llm_meld.select_dialogues(data, 20, seed=5)
    assert [e.id for e in other.examples] != [e.id for e in sub.examples]


def test_checkpoint_survives_a_cut_line_and_resumes(tmp_path: Path, mini_data_root: Path) -> None:
    path = tmp_path / "row.test.jsonl"
    llm_meld.append_records(path, [{"id": "a"}, {"id": "b"}])
    with path.open("a") as f:
        f.write('{"id": "c", "sco')  # a write cut by a kill
    assert [r["id"] for r in llm_meld.read_records(path)] == ["a", "b"]
    llm_meld.append_records(path, [{"id": "d"}])
    assert [r["id"] for r in llm_meld.read_records(path)] == ["a", "b", "d"]

    data = load_dataset("meld", "test", root=mini_data_root)
    first = data.dialogues[0]
    done = {e.id for e in data.examples if e.dialogue is first}
    chunks = list(llm_meld.todo_chunks(data, done, min_chunk=1))
    assert [d.id for c in chunks for d in c] == [d.id for d in data.dialogues[1:]]


def _records(n: int, rng: np.random.Generator, bias: float) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        gold = llm_meld.LABELS[int(rng.integers(0, 7))]
        s = {lab: float(rng.normal()) for lab in llm_meld.LABELS}
        s[gold] += 2.0
        s["fear"] += bias  # a token prior the calibration must remove
        out.append({"id": str(i), "gold": gold, "scores": s, "prompt_tokens": 100, "seconds": 0.5})
    return out


def test_summary_calibrates_on_dev_and_marks_unfinished_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    llm_meld.append_records(tmp_path / "zero-shot.dev.jsonl", _records(200, rng, 6.0))
    llm_meld.append_records(tmp_path / "zero-shot.test.jsonl", _records(300, rng, 6.0))
    llm_meld.append_records(tmp_path / "retrieval.test.jsonl", _records(40, rng, 0.0))
    setup = {
        "planned": {"test": 300, "cue-subset": 10, "dev": 200, "cue-dev": 5, "train": 50},
        "cue_test_ids": [str(i) for i in range(10)],
    }
    out = llm_meld.summarise(tmp_path, setup)
    zs = out["rows"]["zero-shot"]
    assert zs["status"] == "finished" and zs["main"] == "calibrated"
    assert zs["raw"]["predicted"] == {"fear": 300}  # the prior wins without calibration
    assert zs["calibrated"]["weighted_f1"] > 0.5 > zs["raw"]["weighted_f1"]
    assert zs["calibrated"]["ece"] < zs["raw"]["ece"]
    assert sum(zs["calibrated"]["predicted"].values()) == 300
    r = out["rows"]["retrieval"]
    assert r["status"] == "unfinished" and r["n"] == 40 and r["n_planned"] == 300
    assert r["main"] == "raw"  # no dev calibration yet
    assert out["rows"]["cues"] == {
        **llm_meld.ROWS["cues"],
        "n": 0,
        "n_planned": 10,
        "status": "unfinished",
        "n_dev_calibration": 0,
    }
    assert out["rows"]["zero-shot @ cue subset"]["n"] == 10
    json.dumps(out)  # JSON-ready


def test_summary_keeps_committed_rows_that_the_local_run_has_fewer_records_of(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(2)
    setup = {
        "planned": {"test": 300, "cue-subset": 10, "dev": 200, "cue-dev": 5, "train": 50},
        "cue_test_ids": [str(i) for i in range(10)],
    }
    llm_meld.append_records(tmp_path / "zero-shot.dev.jsonl", _records(200, rng, 0.0))
    llm_meld.append_records(tmp_path / "zero-shot.test.jsonl", _records(300, rng, 0.0))
    llm_meld.append_records(tmp_path / "cues.test.jsonl", _records(5, rng, 0.0))
    (tmp_path / "zero-shot.machine.json").write_text('{"cpu_model": "here"}')
    old_row = {"n": 155, "n_planned": 10, "status": "unfinished", "raw": {"weighted_f1": 0.26}}
    previous = {
        "rows": {"cues": old_row, "zero-shot": {"n": 100}, "lora": {"n": 0}},
        "machine": {"cpu_model": "earlier"},
        "summarised_at": "2026-01-01T00:00:00Z",
        "precision": {"argmax_agreement": 0.9},
    }
    out = llm_meld.summarise(tmp_path, setup, previous)
    # 5 local cue records < 155 committed: the committed row stays, naming its machine.
    assert out["rows"]["cues"] == {
        **old_row,
        "machine": {"cpu_model": "earlier"},
        "summarised_at": "2026-01-01T00:00:00Z",
    }
    # 300 local zero-shot records >= 100 committed: the local run wins, with its machine.
    assert out["rows"]["zero-shot"]["n"] == 300
    assert out["rows"]["zero-shot"]["machine"] == {"cpu_model": "here"}
    assert out["rows"]["lora"]["n"] == 0  # an empty committed row is not kept over nothing
    assert out["precision"] == [  # no local precision check: the committed one, its CPU unknown
        {"cpu_model": "not recorded (an earlier session's Intel Xeon with AMX)",
         "argmax_agreement": 0.9}
    ]  # fmt: skip


def test_scored_rows_on_a_tiny_llama_resume_per_dialogue(
    tiny_llama: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    data = load_dataset("meld", "test", root=mini_data_root)
    rec = llm_meld._recognizer(str(tiny_llama), llm_meld.ROWS["zero-shot"], tmp_path, False)
    path = tmp_path / "zero-shot.test.jsonl"
    seen: list[int] = []
    original = rec.predict

    def counting(inputs: Any) -> Any:
        seen.append(sum(len(d) for d in inputs))
        return original(inputs)

    rec.predict = counting
    part = data.limit(1)
    llm_meld.run_phase(rec, part, path, print, min_chunk=1)
    n_first = len(llm_meld.read_records(path))
    assert n_first == len(part)
    llm_meld.run_phase(rec, data, path, print, min_chunk=1)
    records = llm_meld.read_records(path)
    assert sorted(r["id"] for r in records) == sorted(e.id for e in data.examples)
    assert sum(seen) == len(data)  # nothing scored twice
    r = records[0]
    assert set(r["scores"]) == set(llm_meld.LABELS) and r["prompt_tokens"] > 0
    assert all(np.isfinite(list(x["scores"].values())).all() for x in records)
    with pytest.raises(SystemExit):
        llm_meld.main(["--rows", "nope"])


def test_every_row_runs_and_resumes_on_a_tiny_llama(
    tiny_llama: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _common

    monkeypatch.setattr(llm_meld, "WORK", tmp_path / "work")
    monkeypatch.setattr(llm_meld, "RESULTS", tmp_path / "llm_meld.json")
    monkeypatch.setattr(_common, "RAW", tmp_path / "raw")
    args = [
        "--model", str(tiny_llama), "--data-root", str(mini_data_root), "--test-limit", "8",
        "--cue-test", "4", "--dev-n", "4", "--cue-dev-n", "3", "--train-n", "12",
        "--held-out-n", "4", "--precision-n", "3", "--epochs", "2",
    ]  # fmt: skip
    assert llm_meld.main(args) == 0
    assert llm_meld.main([*args, "--summarise"]) == 0
    out = json.loads((tmp_path / "llm_meld.json").read_text())
    for name in llm_meld.ORDER:
        row = out["rows"][name]
        assert row["status"] == "finished", name
        assert row["calibrated"]["weighted_f1"] >= 0
    cues = out["rows"]["cues"]
    assert 0 <= cues["stage1_descriptions_valid_rate"] <= 1
    train = out["rows"]["lora-r-c"]["training"]
    assert train["epochs"][0]["items"] < train["train_examples"]  # curriculum
    assert all("held_out_loss" in e for e in train["epochs"])
    assert train["peak_rss_mb_this_run"] > 0 and train["train_examples_per_second"] > 0
    (check,) = out["precision"]
    assert check["argmax_agreement"] >= 0 and check["cpu_model"]
    # A rerun finds everything done; other settings in the same folder are refused.
    assert llm_meld.main(args) == 0
    assert llm_meld.main([*args, "--epochs", "3"]) == 2
    assert llm_meld.main([*args, "--threads", "2"]) == 0  # threads change speed only
    # On a new machine (the work folder gone) the committed copies bring every row back:
    # nothing is trained or scored again.
    kept = [p.name for p in (tmp_path / "raw").rglob("*.gz")]
    assert {"lora.test.jsonl.gz", "lora.dev.jsonl.gz", "train.json.gz"} <= set(kept)
    import shutil

    shutil.rmtree(tmp_path / "work")
    monkeypatch.setattr(llm_meld, "train_row", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(llm_meld, "run_phase", lambda *a, **k: pytest.fail("scored again"))
    assert llm_meld.main(args) == 0
    llm_meld.main([*args, "--summarise"])
    again = json.loads((tmp_path / "llm_meld.json").read_text())
    assert again["rows"]["lora-r-c"]["training"] == train
    assert again["rows"]["lora"]["calibrated"] == out["rows"]["lora"]["calibrated"]


def test_markdown_table_marks_unfinished_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    llm_meld.append_records(tmp_path / "zero-shot.test.jsonl", _records(30, rng, 0.0))
    setup = {
        "planned": {"test": 300, "cue-subset": 10, "dev": 200, "cue-dev": 5, "train": 50},
        "cue_test_ids": [],
    }
    table = llm_meld.markdown_table(llm_meld.summarise(tmp_path, setup))
    row = next(line for line in table.splitlines() if line.startswith("| zero-shot |"))
    assert "30/300 | unfinished (uncalibrated)" in row
    assert "| PRC-Emo, Qwen3-8B" in table and "0.704" in table


def test_precision_checks_are_kept_per_cpu_model_and_bf16_support(tmp_path: Path) -> None:
    # Two machines both report "AMD EPYC", one without native bf16 and one with it.
    old_avx2 = {"cpu_model": "AMD EPYC", "bf16_native": False, "argmax_agreement": 1.0}
    old_bf16 = {"cpu_model": "AMD EPYC", "bf16_native": True, "argmax_agreement": 0.5}
    new_bf16 = {"cpu_model": "AMD EPYC", "bf16_native": True, "argmax_agreement": 0.9}
    (tmp_path / "precision-amd-epyc-bf16.json").write_text(json.dumps(new_bf16))
    runs = llm_meld._precision_runs(tmp_path, [old_avx2, old_bf16])
    assert runs == [old_avx2, new_bf16]
    name = llm_meld.precision_file(tmp_path).name
    assert name.startswith("precision-") and name.endswith(("-bf16.json", "-nobf16.json"))
