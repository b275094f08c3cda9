"""Ablations of the encoder model's design, measured on the MELD *dev* split.

Each variant trains the MELD head only (2 epochs, same seed) and reports dev weighted-F1, the
training time on this machine and the size of the saved trained parameters. Results go to
``benchmarks/results/encoder_ablation.json``.

    python benchmarks/ablation_encoder.py [--variants frozen1,frozen3,frozen5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from emoscope._io import write_json
from emoscope.training import TrainConfig, train

VARIANTS: dict[str, dict] = {
    "frozen1": {"n_frozen_layers": 1},
    "frozen3": {"n_frozen_layers": 3},
    "frozen5": {"n_frozen_layers": 5},
    "no_context": {"n_frozen_layers": 3, "max_turns": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variants", default="frozen1,frozen3,frozen5,no_context")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/encoder_ablation.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in args.variants.split(","):
        tc = TrainConfig(tasks=("meld",), epochs=args.epochs, **VARIANTS[name])
        t0 = time.perf_counter()
        folder = Path("runs/ablation") / name
        log = train(tc, folder, progress=print)
        results[name] = {
            "settings": VARIANTS[name],
            "epochs": args.epochs,
            "dev_weighted_f1_per_epoch": [e["dev"]["meld"]["weighted_f1"] for e in log["epochs"]],
            "dev_weighted_f1_best": max(e["dev"]["meld"]["weighted_f1"] for e in log["epochs"]),
            "train_seconds": round(time.perf_counter() - t0, 1),
            "saved_megabytes": round((folder / "model.safetensors").stat().st_size / 2**20, 2),
        }
        print(name, results[name], flush=True)
        write_json(out_path, results)


if __name__ == "__main__":
    main()
