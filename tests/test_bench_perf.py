"""The performance benchmarks' own logic: resumable parts, FLOP counts, verbose-log parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_helpers import load_benchmark

common = load_benchmark("_common")
roofline = load_benchmark("roofline")


def test_run_parts_checkpoints_resumes_and_redoes(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    calls: list[str] = []

    def run(name: str) -> dict[str, Any]:
        calls.append(name)
        if name == "b" and calls.count("b") == 1:
            return {"failed": True}
        return {"value": len(calls)}

    common.run_parts(out, {"benchmark": "x"}, ["a", "b"], run)
    saved = json.loads(out.read_text("utf-8"))
    assert saved["benchmark"] == "x" and set(saved["parts"]) == {"a", "b"}
    a = saved["parts"]["a"]
    assert {"load_average_before", "load_average_after", "contended", "measured_at"} <= set(a)
    assert isinstance(a["contended"], bool)
    # a rerun skips what is done, retries what failed, and redoes what it is told to
    parts = common.run_parts(out, {"benchmark": "x"}, ["a", "b", "c"], run, redo=["a"])
    assert calls == ["a", "b", "a", "b", "c"]
    assert not parts["b"].get("failed") and parts["c"]["value"] == 5


def test_layer_flops_count_projections_ffn_and_attention() -> None:
    h, i, n = 384, 1536, 10
    linear = 2 * n * (4 * h * h + 2 * h * i)
    assert roofline._layer_flops(n, h, i) == linear + 4 * n * n * h
    # attention grows quadratically, the rest linearly
    assert roofline._layer_flops(2 * n, h, i) - 2 * roofline._layer_flops(n, h, i) == (
        4 * h * (4 * n * n - 2 * n * n)
    )


def test_verbose_logs_are_parsed_into_kernel_names() -> None:
    log = "\n".join(
        [
            "onednn_verbose,v1,info,oneDNN v3.7.1",
            "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_amx,undef,src:bf16",
            "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_amx,undef,src:bf16",
            "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32",
            "MKL_VERBOSE Intel(R) MKL 2024.2 Product build for Intel(R) 64 architecture "
            "Intel(R) AVX-512 with support of Intel(R) AMX instructions enabled processors, Lnx",
            "MKL_VERBOSE SGEMM(N,N,384,64,384,0x1,0x2,384) 20.1us CNR:OFF Dyn:1 FastMM:1 NThr:2",
        ]
    )
    got = roofline._parse_verbose(log)
    assert got["onednn_primitives"] == {
        "matmul: brg_matmul:avx512_core_amx": 2,
        "reorder: jit:uni": 1,
    }
    assert got["mkl_calls"] == {"SGEMM": 1}
    assert "AMX" in got["mkl_version_line"]


def test_summary_gives_fraction_of_the_matching_peak() -> None:
    parts = {
        "flops": {"gflop_per_utterance_computed": 0.5},
        "gemm": {"peak_gflops_at_model_shapes": {"fp32": 100.0, "bf16": 400.0}},
        "backends": {
            "backends": {
                "torch": {"utterances_per_second_median": 100.0},
                "torch-bf16": {"utterances_per_second_median": 200.0},
            }
        },
    }
    s = roofline.summarise(parts)
    assert s["torch"]["achieved_gflops"] == 50.0 and s["torch"]["fraction_of_peak"] == 0.5
    assert s["torch-bf16"]["peak_format"] == "bf16"
    assert s["torch-bf16"]["fraction_of_peak"] == 0.25
