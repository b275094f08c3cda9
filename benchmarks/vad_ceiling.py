"""How far EmoBank valence goes with MiniLM-L6 when VAD is (almost) the only task.

The default model trains VAD jointly with three classification tasks. This script asks what the
same encoder reaches when EmoBank dominates training: all six MiniLM layers trained, EmoBank loss
weighted 20x, and only 500 GoEmotions texts an epoch (the trainer needs one labelled task), seed
13, best epoch by dev score, then the ridge refit of the VAD head (kept only if dev improves).
It writes the dev Pearson r per epoch and the saved model's Pearson r / CCC on the EmoBank *test*
split to ``benchmarks/results/vad_ceiling.json``.

    python benchmarks/vad_ceiling.py --out-model runs/vad_ceiling     # train (about 37 min), score
    python benchmarks/vad_ceiling.py --model runs/vad_ceiling         # score a model trained so
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from emoscope._io import write_json
from emoscope.datasets import load_dataset
from emoscope.evaluate import evaluate
from emoscope.recognizers.encoder import EncoderRecognizer
from emoscope.training import TrainConfig, train

SETTINGS = TrainConfig(
    tasks=("goemotions", "emobank"),
    epochs=6,
    n_frozen_layers=0,
    seed=13,
    max_per_epoch={"goemotions": 500},
    task_weights={"emobank": 20.0},
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--out-model", type=Path, help="Train into this folder, then score it.")
    group.add_argument("--model", type=Path, help="Score a folder trained with these settings.")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vad_ceiling.json"))
    ap.add_argument("--data-root", default=None, help="Datasets folder (default: ../shared/data).")
    args = ap.parse_args()
    torch.set_num_threads(2)
    folder = args.model or args.out_model
    if args.out_model is not None:
        train(
            replace(SETTINGS, data_root=args.data_root),
            folder,
            progress=lambda m: print(m, flush=True),
        )
    log_file = folder / "training_log.json"
    if not log_file.is_file():
        ap.error(f"{log_file} not found: --model expects a folder written by emoscope's trainer")
    log = json.loads(log_file.read_text("utf-8"))
    expected = json.loads(json.dumps(asdict(SETTINGS)))
    trained = log["config"]
    differ = sorted(
        k for k in expected if k != "data_root" and k in trained and trained[k] != expected[k]
    )
    if differ:
        ap.error(f"{folder} was trained with other settings ({', '.join(differ)})")
    t0 = time.perf_counter()
    res = evaluate(
        EncoderRecognizer(folder), load_dataset("emobank", "test", args.data_root), progress=False
    )
    assert res.vad is not None
    dev: list[dict[str, Any]] = [
        {
            "epoch": e["epoch"],
            **{k: round(v, 4) for k, v in e["dev"]["emobank"].items() if k != "score"},
        }
        for e in log["epochs"]
    ]
    out = {
        "settings": trained,
        "train_seconds": log["seconds"]["total"],
        "dev_per_epoch": dev,
        "vad_refit": log["vad_refit"]["emobank"],
        "test": res.vad,
        "test_n": res.n,
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(args.out, out)
    v = res.vad["valence"]
    print(f"EmoBank test valence r {v['pearson_r']:.4f} (CCC {v['ccc']:.4f}); written {args.out}")


if __name__ == "__main__":
    main()
