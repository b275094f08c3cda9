"""Train emoscope's shipped default model (the documented `slow` job).

    python benchmarks/train_default.py [--out src/emoscope/data/default_model]

Same as ``emoscope train`` with the settings below (fixed seed): MELD + EmoryNLP conversation
heads, a GoEmotions multi-label head (8,000 random training texts per epoch, soft targets: each
label set as a distribution, KL to one softmax; see ablation_soft_targets.py) and an EmoBank VAD
head (its loss weighted 20x: its MSE on [-1, 1] targets is small next to the cross-entropies),
4 epochs, all of MiniLM's layers trained. The log (per-epoch dev scores,
calibration before/after, wall time) is written next to the model as ``training_log.json``.
"""

from __future__ import annotations

import argparse
import time

import torch

from emoscope.training import TrainConfig, train

SETTINGS = TrainConfig(
    tasks=("meld", "emorynlp", "goemotions", "emobank"),
    epochs=4,
    n_frozen_layers=0,
    batch_size=32,
    lr=1e-4,
    head_lr=1e-3,
    seed=13,
    max_per_epoch={"goemotions": 8000},
    task_weights={"emobank": 20.0},
    soft_targets=("goemotions",),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="src/emoscope/data/default_model")
    ap.add_argument("--epochs", type=int, default=SETTINGS.epochs)
    ap.add_argument(
        "--task-weight",
        action="append",
        default=[],
        metavar="TASK=W",
        help="loss weight of a task (repeatable), e.g. emobank=20",
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    SETTINGS.epochs = args.epochs
    for item in args.task_weight:
        name, _, weight = item.partition("=")
        SETTINGS.task_weights[name] = float(weight)
    t0 = time.perf_counter()
    log = train(SETTINGS, args.out, progress=lambda m: print(m, flush=True))
    print(
        f"done in {time.perf_counter() - t0:.0f}s; best dev score "
        f"{max(e['dev_score'] for e in log['epochs']):.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
