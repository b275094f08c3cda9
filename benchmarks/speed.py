"""Speed and memory of the default model, side by side, in one run.

Configurations (each measured in its own subprocess so peak RSS is its own):

- ``minilm-torch``: the shipped model, PyTorch;
- ``minilm-onnx``: the same, utterance encoder in ONNX Runtime (fp32);
- ``minilm-onnx-int8``: the same with dynamic int8 quantisation (accuracy change reported);
- ``distilroberta-torch``: the same pipeline (chunking, context model, heads) on a
  random-initialised distilroberta-base sized backbone built from its config (6 layers, hidden
  768, 12 heads, FFN 3072) — speed only, its predictions mean nothing. It reuses MiniLM's
  WordPiece tokenizer (distilroberta's BPE files are not available offline), which changes
  neither sequence lengths much nor compute per token.

Measured: batch throughput over MELD test (2,610 utterances read in their dialogues' context),
median of ``--repeats`` runs; single-text latency (``predict([text])`` warm, p50/p95 over 200
texts); MELD-test weighted-F1 (for the accuracy cost of ONNX/int8); peak RSS. Also the whole
``emoscope analyze "text"`` process, cold, median of 3. Results: ``benchmarks/results/speed.json``.

    python benchmarks/speed.py [--repeats 3]
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

CONFIGS = ("minilm-torch", "minilm-onnx", "minilm-onnx-int8", "distilroberta-torch")


def _recognizer(config: str) -> Any:
    from emoscope.recognizers.encoder import EncoderRecognizer

    if config.startswith("minilm-"):
        return EncoderRecognizer(backend=config.removeprefix("minilm-"))
    from transformers import RobertaConfig, RobertaModel

    from emoscope.recognizers.encoder import EmotionEncoder

    shipped = EncoderRecognizer()
    rcfg = RobertaConfig(
        vocab_size=50265,
        hidden_size=768,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
    )
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
    if config.startswith("minilm-"):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="benchmarks/results/speed.json")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeats)))
        return
    results: dict[str, Any] = {}
    for config in CONFIGS:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", config, "--repeats", str(args.repeats)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        results[config] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(config, results[config], flush=True)
    base = results["minilm-torch"]["utterances_per_second_median"]
    for r in results.values():
        r["throughput_vs_minilm_torch"] = round(r["utterances_per_second_median"] / base, 3)
    import torch

    from emoscope._io import write_json

    write_json(
        args.out,
        {
            "configs": results,
            "cli_analyze_cold": cold_cli(),
            "machine": {
                "cpus": os.cpu_count(),
                "torch_threads": 2,
                "python": platform.python_version(),
                "torch": torch.__version__,
            },
            "date": time.strftime("%Y-%m-%d"),
            "note": "All configurations measured in one run of this script, one after another.",
        },
    )


if __name__ == "__main__":
    main()
