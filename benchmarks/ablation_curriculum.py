"""Curriculum ablation of the encoder model on MELD: easy-to-hard curriculum vs shuffled training.

The curriculum is PRC-Emo's (Li et al., "Do LLMs Feel? Teaching Emotion Recognition with Prompts,
Retrieval, and Curriculum Learning", AAAI 2026; :mod:`emoscope.curriculum`): MELD dialogue units
are ordered by their speaker-weighted emotion-shift difficulty and trained in 2 buckets (the easier
half in epoch 1, everything from epoch 2 on). The baseline ("none") trains on the whole shuffled
set every epoch. Everything else is the encoder trainer's default (:mod:`emoscope.training`),
MELD head only.

For each strategy and seed the script trains a model, keeps the best epoch by dev score (as the
trainer does) and records its dev weighted-F1 and the weighted-F1 of the saved model on the MELD
*test* split; then mean ± sample sd over the seeds. Results go to
``benchmarks/results/curriculum_ablation.json`` (each finished run is written at once, so an
interrupted run keeps what it finished; finished (strategy, seed) pairs are skipped on rerun).

    python benchmarks/ablation_curriculum.py --seeds 13,14,15
    python benchmarks/ablation_curriculum.py --seeds 1 --limit 60 --epochs 2 --out /tmp/smoke.json

``--limit N`` uses only the first N utterances (whole dialogues) of every split: a smoke test of
the script, not a measurement. Several hours of CPU for the full run (3 epochs x 2 strategies x
3 seeds on the 9,989 MELD training utterances).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from _common import (
    add_training_options,
    parse_choices,
    parse_seeds,
    run_grid,
    train_and_test,
    training_setup,
)
from emoscope.curriculum import STRATEGIES
from emoscope.training import TrainConfig

DEFAULT_OUT = Path("benchmarks/results/curriculum_ablation.json")
KEYS = ("dev_weighted_f1", "test_weighted_f1")


def run_one(strategy: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Train one model and score it on MELD dev (best epoch) and test."""
    tc = TrainConfig(
        tasks=("meld",),
        epochs=args.epochs,
        seed=seed,
        limit=args.limit,
        data_root=args.data_root,
        curriculum=strategy,
    )
    log, best, result, train_s = train_and_test(tc, folder, args, "meld")
    dev = [e["dev"]["meld"]["weighted_f1"] for e in log["epochs"]]
    return {
        "strategy": strategy,
        "seed": seed,
        "best_epoch": best + 1,
        "dev_weighted_f1": dev[best],
        "dev_weighted_f1_per_epoch": dev,
        "test_weighted_f1": result.classification["weighted_f1"],
        "test_n": result.n,
        "units_per_epoch": [
            e.get("curriculum", {}).get("meld", {}).get("units") for e in log["epochs"]
        ],
        "train_seconds": round(train_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", required=True, help="Comma-separated seeds, e.g. 13,14,15.")
    ap.add_argument(
        "--strategies",
        default="none,speaker-weighted",
        help=f"Comma-separated, from: {', '.join(STRATEGIES)}.",
    )
    add_training_options(ap, DEFAULT_OUT, TrainConfig.epochs)
    args = ap.parse_args()
    seeds = parse_seeds(ap, args.seeds)
    strategies = parse_choices(ap, args.strategies, STRATEGIES, "strategies")
    torch.set_num_threads(args.threads)

    setup = training_setup(
        args,
        "meld",
        "encoder (emoscope.training, MELD head only)",
        curriculum="2 buckets, one added per epoch, then full data; k=1, b=0.4, vad circle",
    )
    summary = run_grid(
        args.out,
        setup,
        lambda old: old.get("limit") == args.limit and old.get("epochs") == args.epochs,
        "strategy",
        strategies,
        seeds,
        KEYS,
        lambda strategy, seed, folder: run_one(strategy, seed, args, folder),
    )
    for strategy, s in summary.items():
        d, t = s["dev_weighted_f1"], s["test_weighted_f1"]
        print(
            f"{strategy:>17}: dev wF1 {d['mean']:.4f} ± {d['sd']:.4f}, "
            f"test wF1 {t['mean']:.4f} ± {t['sd']:.4f} (seeds {s['seeds']})"
        )


if __name__ == "__main__":
    main()
