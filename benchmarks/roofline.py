"""How far the default model is from what this CPU can do → ``benchmarks/results/roofline.json``.

Parts (each in its own subprocess, checkpointed; a rerun skips parts already measured unless
named in ``--redo``):

- ``gemm`` — the machine's matrix-multiply peak on ``--threads`` threads: torch float32,
  bfloat16 and int8 (``torch._int_mm``) and ONNX Runtime's int8 ``MatMulInteger`` at the model's
  shapes (tokens of a length-sorted MELD batch × 384 → 384 / 1536 and back) and at one large
  square shape; GFLOP/s, median of 5 timed blocks of at least 0.2 s.
- ``flops`` — the model's FLOPs per utterance at MELD test's real token lengths, counted from the
  shapes (Q/K/V/output projections, FFN, attention scores and weighted sums, the dialogue context
  layer, the heads), for real tokens and for the tokens computed once batches are padded.
- ``backends`` — each backend's utterance throughput on MELD test (in context), hence its
  achieved GFLOP/s (FLOPs of the tokens it computes) and the fraction of the peak of its
  number format.
- ``isa`` — which kernels each backend runs: oneDNN's (``ONEDNN_VERBOSE=1``) implementation
  names and MKL's (``MKL_VERBOSE=1``) instruction-set line for torch; node types from ONNX
  Runtime's profiler for the ONNX backends.
- ``gemm-noamx`` / ``backends-noamx`` — the same with AMX disabled
  (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI``, ``MKL_ENABLE_INSTRUCTIONS=AVX512``): laptop-class
  figures for oneDNN/MKL. ONNX Runtime's MLAS kernels do not read these variables.

    python benchmarks/roofline.py                    # all parts not yet measured
    python benchmarks/roofline.py --redo gemm,backends   # re-measure on a quiet machine
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import run_parts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "roofline.json"
PARTS = ("flops", "gemm", "backends", "isa", "gemm-noamx", "backends-noamx")
BACKENDS = ("torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8")
NO_AMX = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "MKL_ENABLE_INSTRUCTIONS": "AVX512"}
PEAK_OF = {
    "torch": "fp32",
    "torch-bf16": "bf16",
    "torch-int8": "int8-torch",
    "onnx": "fp32",
    "onnx-int8": "int8-ort",
}


# -- timing -----------------------------------------------------------------------------------
def _time(fn: Callable[[], Any], min_seconds: float = 0.2, blocks: int = 5) -> float:
    """Median seconds per call over ``blocks`` blocks of calls lasting ``min_seconds`` each."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_seconds:
            break
        n *= 2
    per = [t / n]
    for _ in range(blocks - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        per.append((time.perf_counter() - t0) / n)
    return statistics.median(per)


def _ort_int8_matmul(m: int, k: int, n: int, threads: int) -> Callable[[], Any]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    b = np.random.default_rng(0).integers(-127, 127, (k, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
        [onnx.numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 255, (m, k), dtype=np.uint8)
    return lambda: sess.run(None, {"a": a})


def gemm(threads: int, batch_tokens: int) -> dict[str, Any]:
    """GFLOP/s of each number format at the model's shapes and at a large square one."""
    import torch

    torch.set_num_threads(threads)
    shapes = {
        "qkv_or_out (T,384)x(384,384)": (batch_tokens, 384, 384),
        "ffn_up (T,384)x(384,1536)": (batch_tokens, 384, 1536),
        "ffn_down (T,1536)x(1536,384)": (batch_tokens, 1536, 384),
        "single_text (24,384)x(384,1536)": (24, 384, 1536),
        "square 2048": (2048, 2048, 2048),
    }
    out: dict[str, Any] = {"threads": threads, "batch_tokens": batch_tokens, "shapes": {}}
    for label, (m, k, n) in shapes.items():
        flops = 2 * m * k * n
        row: dict[str, float] = {}
        a32, b32 = torch.randn(m, k), torch.randn(k, n)
        row["fp32"] = flops / _time(lambda a=a32, b=b32: a @ b) / 1e9
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        row["bf16"] = flops / _time(lambda a=a16, b=b16: a @ b) / 1e9
        a8 = torch.randint(-127, 127, (m, k), dtype=torch.int8)
        b8 = torch.randint(-127, 127, (k, n), dtype=torch.int8)
        try:
            row["int8-torch"] = flops / _time(lambda a=a8, b=b8: torch._int_mm(a, b)) / 1e9
        except RuntimeError as e:  # shape constraints of the int8 kernel
            row["int8-torch-error"] = str(e)[:200]  # type: ignore[assignment]
        row["int8-ort"] = flops / _time(_ort_int8_matmul(m, k, n, threads)) / 1e9
        out["shapes"][label] = {
            k2: round(v, 1) if isinstance(v, float) else v for k2, v in row.items()
        }
    model_shapes = [v for k2, v in out["shapes"].items() if k2.startswith(("qkv", "ffn"))]
    # The model's peak per format: the best of its three batch shapes (what a forward pass
    # could reach if every product ran at that speed).
    out["peak_gflops_at_model_shapes"] = {
        f: max(s[f] for s in model_shapes if f in s)
        for f in ("fp32", "bf16", "int8-torch", "int8-ort")
        if any(f in s for s in model_shapes)
    }
    out["peak_gflops_square"] = {
        f: v for f, v in out["shapes"]["square 2048"].items() if isinstance(v, float)
    }
    return out


# -- FLOPs ------------------------------------------------------------------------------------
def _layer_flops(length: int, hidden: int, inter: int) -> int:
    """One post-LN encoder layer on ``length`` tokens: projections, FFN and attention."""
    linear = 2 * length * (4 * hidden * hidden + 2 * hidden * inter)
    attention = 2 * 2 * length * length * hidden  # Q·Kᵀ and softmax(·)·V over all heads
    return linear + attention


def flops() -> dict[str, Any]:
    """FLOPs per utterance of the default model over MELD test, real and padded."""
    from emoscope.datasets import load_dataset
    from emoscope.recognizers.base import flatten_inputs
    from emoscope.recognizers.encoder import EncoderRecognizer, chunk_token_ids, plan_windows

    rec = EncoderRecognizer(backend="torch")
    cfg, bb = rec.config, rec.model.backbone.config
    hidden, inter, layers = (
        int(bb.hidden_size),
        int(bb.intermediate_size),
        len(rec.model.backbone.encoder.layer),
    )
    ds = load_dataset("meld", "test")
    targets = flatten_inputs(ds.inputs())
    tok = rec.tokenizer
    ids = tok([t.text for t in targets], add_special_tokens=False)["input_ids"]
    chunks, _ = chunk_token_ids(ids, cfg.max_seq_length, tok.cls_token_id, tok.sep_token_id)
    lengths = sorted(len(c) for c in chunks)
    real = sum(layers * _layer_flops(n, hidden, inter) for n in lengths)
    padded, computed_tokens = 0, 0
    for b in range(0, len(lengths), rec.batch_size):  # the recogniser's length-sorted batches
        batch = lengths[b : b + rec.batch_size]
        width = max(batch)
        computed_tokens += width * len(batch)
        padded += len(batch) * layers * _layer_flops(width, hidden, inter)
    plan = plan_windows(targets, cfg.max_turns, cfg.n_speakers)
    ctx = sum(cfg.context_layers * _layer_flops(len(w), hidden, 2 * hidden) for w in plan.windows)
    head_out = sum(3 if h.kind == "vad" else len(h.labels) for h in cfg.heads[:1]) + 3
    heads = len(targets) * 2 * (2 * hidden) * head_out
    n = len(targets)
    return {
        "utterances": n,
        "chunks": len(chunks),
        "tokens_real": sum(lengths),
        "tokens_computed": computed_tokens,
        "padding_waste": round(computed_tokens / sum(lengths) - 1, 4),
        "token_length": {
            "mean": round(statistics.fmean(lengths), 2),
            "median": statistics.median(lengths),
            "p95": lengths[int(0.95 * len(lengths)) - 1],
            "max": lengths[-1],
        },
        "gflop_per_utterance_real_tokens": round((real + ctx + heads) / n / 1e9, 5),
        "gflop_per_utterance_computed": round((padded + ctx + heads) / n / 1e9, 5),
        "share_attention_scores": round(
            sum(layers * 4 * x * x * hidden for x in lengths) / real, 4
        ),
        "share_context_and_heads": round((ctx + heads) / (real + ctx + heads), 4),
        "model": {"hidden": hidden, "intermediate": inter, "layers": layers},
        "batch_size": rec.batch_size,
    }


# -- backends ---------------------------------------------------------------------------------
def backend_speed(backend: str, threads: int, repeats: int) -> dict[str, Any]:
    """Utterances/s of one backend over MELD test in context (median of ``repeats``)."""
    import torch

    from emoscope.datasets import load_dataset
    from emoscope.recognizers.encoder import EncoderRecognizer

    torch.set_num_threads(threads)
    rec = EncoderRecognizer(backend=backend)
    ds = load_dataset("meld", "test")
    inputs = ds.inputs()
    rec.predict(inputs[:20])
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rec.predict(inputs)
        runs.append(time.perf_counter() - t0)
    return {
        "backend": backend,
        "utterances": len(ds),
        "seconds": [round(r, 3) for r in runs],
        "utterances_per_second_median": round(len(ds) / statistics.median(runs), 1),
    }


def isa(backend: str) -> dict[str, Any]:
    """Kernel / instruction-set names one backend's forward passes report."""
    from emoscope.datasets import load_dataset
    from emoscope.recognizers.encoder import EncoderRecognizer

    rec = EncoderRecognizer(backend=backend)
    texts = [e.text for e in load_dataset("meld", "test").examples[:128]]
    if backend.startswith("onnx"):
        import onnxruntime as ort

        enc = rec._token_sums.__self__  # type: ignore[attr-defined]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
        enc.session = ort.InferenceSession(str(enc.path), opts, providers=["CPUExecutionProvider"])
        rec.predict(texts)
        prof = Path(enc.session.end_profiling())
        events = json.loads(prof.read_text("utf-8"))
        ops = Counter(
            e["args"].get("op_name", "?")
            for e in events
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
        )
        return {"ort_node_types": dict(ops.most_common())}
    rec.predict(texts)
    return {}


def _parse_verbose(text: str) -> dict[str, Any]:
    onednn: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("onednn_verbose") and ",exec," in line:
            f = line.split(",")
            i = f.index("exec")
            onednn[f"{f[i + 2]}: {f[i + 3]}"] += 1  # primitive kind: implementation (ISA)
    mkl_calls = Counter(
        m.group(1)
        for m in re.finditer(r"^MKL_VERBOSE ([A-Z][A-Z0-9_]+)\(", text, flags=re.MULTILINE)
    )
    mkl_isa = sorted(
        set(
            re.findall(
                r"^MKL_VERBOSE.*?Intel\(R\) ([^,]*?) (?:enabled|instructions)",
                text,
                flags=re.MULTILINE,
            )
        )
    )
    mkl_line = next((ln for ln in text.splitlines() if ln.startswith("MKL_VERBOSE Intel")), "")
    return {
        "onednn_primitives": dict(onednn.most_common()),
        "mkl_calls": dict(mkl_calls.most_common()),
        "mkl_version_line": mkl_line[:300],
        "mkl_isa": mkl_isa,
    }


# -- driver -----------------------------------------------------------------------------------
def _child(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise RuntimeError("no JSON line in the child's output")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--redo", default="", help="comma-separated parts to measure again")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "gemm":
            res = gemm(args.threads, int(rest[0]))
        elif kind == "flops":
            res = flops()
        elif kind == "backend":
            res = backend_speed(rest[0], args.threads, args.repeats)
        else:
            res = isa(rest[0])
        print(json.dumps(res))
        return

    def run_part(name: str) -> dict[str, Any]:
        env = NO_AMX if name.endswith("-noamx") else {}
        if name == "flops":
            return _last_json(_child(["--child", "flops"]))
        if name.startswith("gemm"):
            done = json.loads(args.out.read_text("utf-8")) if args.out.is_file() else {}
            fl = done.get("parts", {}).get("flops") or _last_json(_child(["--child", "flops"]))
            tokens = int(fl["tokens_computed"] / max(fl["chunks"] / fl["batch_size"], 1))
            return _last_json(
                _child(["--threads", str(args.threads), "--child", "gemm", str(tokens)], env)
            )
        if name.startswith("backends"):
            rows = {}
            for b in BACKENDS:
                if env and b.startswith("onnx"):
                    continue  # MLAS ignores the oneDNN/MKL ISA caps: nothing new to learn
                rows[b] = _last_json(
                    _child(
                        [
                            "--threads",
                            str(args.threads),
                            "--repeats",
                            str(args.repeats),
                            "--child",
                            "backend",
                            b,
                        ],
                        env,
                    )
                )
            return {"backends": rows, "env": env}
        rows = {}
        for b in BACKENDS:
            out = _child(["--child", "isa", b], {"ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"})
            rows[b] = {**_parse_verbose(out), **_last_json(out)}
        return {"backends": rows}

    header = {
        "benchmark": "roofline",
        "threads": args.threads,
        "note": "Each part ran in its own subprocess; 'contended' marks parts during which "
        "other jobs shared the CPU (1-minute load average above 0.75 x CPUs).",
    }
    only = [p for p in args.only.split(",") if p]
    parts = run_parts(
        args.out,
        header,
        [p for p in PARTS if p in only],
        run_part,
        redo=[p for p in args.redo.split(",") if p],
    )
    summary = summarise(parts)
    from emoscope._io import write_json

    write_json(args.out, {**header, "parts": parts, "summary": summary})
    print(json.dumps(summary, indent=1))


def summarise(parts: dict[str, Any]) -> dict[str, Any]:
    """Achieved GFLOP/s and fraction of peak of each backend (with and without AMX)."""
    fl = parts.get("flops")
    out: dict[str, Any] = {}
    if not fl:
        return out
    per_utt = fl["gflop_per_utterance_computed"]
    for suffix in ("", "-noamx"):
        g, b = parts.get("gemm" + suffix), parts.get("backends" + suffix)
        if not g or not b:
            continue
        peaks = g["peak_gflops_at_model_shapes"]
        for name, row in b["backends"].items():
            ups = row["utterances_per_second_median"]
            fmt = PEAK_OF[name]
            peak = peaks.get(fmt)
            out[name + suffix] = {
                "utterances_per_second": ups,
                "achieved_gflops": round(ups * per_utt, 1),
                "peak_format": fmt,
                "peak_gflops": peak,
                "fraction_of_peak": round(ups * per_utt / peak, 3) if peak else None,
                "contended": bool(g.get("contended") or b.get("contended")),
            }
    return out


if __name__ == "__main__":
    main()
