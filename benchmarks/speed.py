"""Speed and memory of the default model, side by side, in one run.

Configurations (each measured in its own subprocess so peak RSS is its own):

- ``default``: the shipped model as ``emoscope.load()`` gives it (backend ``auto``: bfloat16
  autocast on a CPU with native bf16, float32 elsewhere);
- ``minilm-torch``: the shipped model, PyTorch float32;
- ``minilm-torch-bf16``: bfloat16 autocast of the utterance encoder (AMX on this CPU);
- ``minilm-torch-int8``: torch dynamic int8 quantisation of the encoder's linear layers
  (``backend="torch-int8"``, ``torch.ao.quantization.quantize_dynamic``);
- ``minilm-onnx``: the same, utterance encoder in ONNX Runtime (fp32);
- ``minilm-onnx-int8``: the same with dynamic int8 quantisation (accuracy change reported);
- ``distilroberta-torch``: the same pipeline (chunking, context model, heads) on a
  random-initialised distilroberta-base sized backbone built from its config (6 layers, hidden
  768, 12 heads, FFN 3072) — speed only, its predictions mean nothing. It reuses MiniLM's
  WordPiece tokenizer (distilroberta's BPE files are not available offline), which changes
  neither sequence lengths much nor compute per token.

The default backend must keep MELD-test weighted-F1 within 0.002 of float32 (``qualifies``);
``padding`` gives the tokens computed vs the real tokens of the length-sorted batches. Each
configuration is checkpointed into the results file, with the load averages before and after it:
a rerun measures only what is missing or named in ``--redo``.

Measured: batch throughput over MELD test (2,610 utterances read in their dialogues' context),
median of ``--repeats`` runs; single-text latency (``predict([text])`` warm, p50/p95 over 200
texts); MELD-test weighted-F1 (for the accuracy cost of ONNX/int8); peak RSS. Also the whole
``emoscope analyze "text"`` process, cold, median of 3. Results: ``benchmarks/results/speed.json``.

    python benchmarks/speed.py [--repeats 3] [--redo default,minilm-torch,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS = (
    "default",
    "minilm-torch",
    "minilm-torch-bf16",
    "minilm-torch-int8",
    "minilm-onnx",
    "minilm-onnx-int8",
    "distilroberta-torch",
)
F1_TOLERANCE = 0.002


def _recognizer(config: str) -> Any:
    from emoscope.recognizers.encoder import EncoderRecognizer

    if config == "default":
        return EncoderRecognizer()
    if config.startswith("minilm-"):
        return EncoderRecognizer(backend=config.removeprefix("minilm-"))
    from transformers import RobertaConfig, RobertaModel

    from _common import DISTILROBERTA_BASE
    from emoscope.recognizers.encoder import EmotionEncoder

    shipped = EncoderRecognizer()
    rcfg = RobertaConfig(**DISTILROBERTA_BASE)
    model = EmotionEncoder(shipped.config, RobertaModel(rcfg)).eval()
    return EncoderRecognizer(model=model, tokenizer=shipped.tokenizer)


def measure(config: str, repeats: int) -> dict[str, Any]:
    """Measure one configuration in this process."""
    import torch

    from emoscope.datasets import load_dataset
    from emoscope.evaluate import evaluate

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rec = _recognizer(config)
    load_s = time.perf_counter() - t0
    ds = load_dataset("meld", "test")
    inputs = ds.inputs()
    rec.predict(inputs[:5])  # warm up (and export ONNX if needed)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        rec.predict(inputs)
        runs.append(time.perf_counter() - t)
    texts = [e.text for e in ds.examples[:200]]
    lat = []
    for text in texts:
        t = time.perf_counter()
        rec.predict([text])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    out: dict[str, Any] = {
        "load_seconds": round(load_s, 2),
        "batch_seconds": [round(r, 3) for r in runs],
        "utterances": len(ds),
        "utterances_per_second_median": round(len(ds) / statistics.median(runs), 1),
        "latency_ms_p50": round(statistics.median(lat), 2),
        "latency_ms_p95": round(lat[int(0.95 * len(lat)) - 1], 2),
    }
    out["backend"] = getattr(rec, "backend", None)
    if config.startswith("minilm-") or config == "default":
        res = evaluate(rec, ds, progress=False)
        assert res.classification is not None
        out["meld_test_weighted_f1"] = round(res.classification["weighted_f1"], 4)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def cold_cli(repeats: int = 3) -> dict[str, Any]:
    """Wall time of a whole ``emoscope analyze "text"`` process."""
    exe = Path(sys.executable).with_name("emoscope")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(
            [str(exe), "analyze", "I can't believe you did this!"],
            check=True,
            capture_output=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        times.append(time.perf_counter() - t)
    return {
        "seconds": [round(t, 2) for t in times],
        "median_seconds": round(statistics.median(times), 2),
    }


def _padding() -> dict[str, Any]:
    from roofline import flops

    fl = flops()
    keys = ("tokens_real", "tokens_computed", "padding_waste", "token_length", "batch_size")
    return {k: fl[k] for k in keys}


def _fraction_of_peak(results: dict[str, Any]) -> dict[str, Any]:
    """Achieved GFLOP/s and fraction of the matching GEMM peak, from ``roofline.json``."""
    from roofline import OUT as ROOFLINE
    from roofline import PEAK_OF

    if not ROOFLINE.is_file():
        return {}
    parts = json.loads(ROOFLINE.read_text("utf-8")).get("parts", {})
    if "flops" not in parts or "gemm" not in parts:
        return {}
    per_utt = parts["flops"]["gflop_per_utterance_computed"]
    peaks = parts["gemm"]["peak_gflops_at_model_shapes"]
    out = {}
    for name, r in results.items():
        backend = r.get("backend")
        if name.startswith("distilroberta") or backend not in PEAK_OF:
            continue
        gflops = r["utterances_per_second_median"] * per_utt
        peak = peaks.get(PEAK_OF[backend])
        out[name] = {
            "achieved_gflops": round(gflops, 1),
            "peak_gflops": peak,
            "fraction_of_peak": round(gflops / peak, 3) if peak else None,
            "peak_contended": parts["gemm"].get("contended"),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/speed.json"))
    ap.add_argument("--redo", default="", help="comma-separated parts to measure again")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeats)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import run_parts

    def run_part(name: str) -> dict[str, Any]:
        if name == "cli_analyze_cold":
            return cold_cli()
        if name == "padding":
            return _padding()
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    import torch

    header = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": 2,
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "note": "Configurations measured one after another by this script, each in its own "
        "process; 'contended' marks a part during which other jobs shared the CPU.",
    }
    parts = run_parts(
        args.out,
        header,
        [*CONFIGS, "padding", "cli_analyze_cold"],
        run_part,
        redo=[p for p in args.redo.split(",") if p],
    )
    results = {k: parts[k] for k in CONFIGS if k in parts}
    summary: dict[str, Any] = {}
    base = results.get("minilm-torch")
    if base:
        f32 = base["meld_test_weighted_f1"]
        for r in results.values():
            r["throughput_vs_minilm_torch"] = round(
                r["utterances_per_second_median"] / base["utterances_per_second_median"], 3
            )
            if "meld_test_weighted_f1" in r:
                r["qualifies"] = abs(r["meld_test_weighted_f1"] - f32) <= F1_TOLERANCE
        qualified = [n for n, r in results.items() if r.get("qualifies") and n != "default"]
        fastest = max(qualified, key=lambda n: results[n]["utterances_per_second_median"])
        summary = {
            "default_backend": results.get("default", {}).get("backend"),
            "fastest_qualifying": fastest,
            "f1_tolerance": F1_TOLERANCE,
            "fraction_of_peak": _fraction_of_peak(results),
        }
    from emoscope._io import write_json

    write_json(args.out, {**header, "parts": parts, "summary": summary})
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
