"""Soft-target ablation of the encoder model on GoEmotions: KL to label distributions vs sigmoids.

GoEmotions (Demszky et al., ACL 2020) gives every comment the set of labels that at least two of
its raters chose. The baseline ("sigmoid") trains 28 independent sigmoids with binary
cross-entropy, as the default model does. The soft-target variant ("soft") treats each label set
as a distribution (uniform over the chosen labels) and trains one softmax with KL divergence to
it, as label-distribution learning does for multi-rater data (Geng, "Label Distribution
Learning", IEEE TKDE 2016). The per-rater votes that would make the distribution graded are not
in the released files, so the distribution is the normalised label set. Both variants get
per-label thresholds tuned on dev (on their own probabilities), as the trainer does.

For each variant and seed: train a GoEmotions-only model (the default model's settings: 3 frozen
layers, 12,000 random training texts per epoch), keep the best epoch by dev macro-F1, and score
the saved model's macro-F1 on the GoEmotions *test* split (5,427 texts). Then mean ± sample sd.
Results: ``benchmarks/results/soft_targets_ablation.json`` (written after every run; finished
(variant, seed) pairs are skipped on rerun).

    python benchmarks/ablation_soft_targets.py --seeds 13,14
    python benchmarks/ablation_soft_targets.py --seeds 1 --limit 200 --epochs 1 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from _common import add_training_options, parse_choices, parse_seeds, run_grid, train_and_test
from emoscope.training import TrainConfig

DEFAULT_OUT = Path("benchmarks/results/soft_targets_ablation.json")
VARIANTS = ("sigmoid", "soft")
KEYS = ("dev_macro_f1", "test_macro_f1")


def run_one(variant: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Train one GoEmotions model and score it on dev (best epoch) and test."""
    tc = TrainConfig(
        tasks=("goemotions",),
        epochs=args.epochs,
        seed=seed,
        limit=args.limit,
        data_root=args.data_root,
        max_per_epoch={"goemotions": args.per_epoch},
        soft_targets=("goemotions",) if variant == "soft" else (),
    )
    log, best, result, train_s = train_and_test(tc, folder, args, "goemotions")
    return {
        "variant": variant,
        "seed": seed,
        "best_epoch": best + 1,
        "dev_macro_f1_per_epoch": [e["dev"]["goemotions"]["macro_f1"] for e in log["epochs"]],
        # after threshold tuning on dev, as the saved model predicts
        "dev_macro_f1": log["calibration"]["goemotions"]["after"]["macro_f1"],
        "test_macro_f1": result.classification["macro_f1"],
        "test_n": result.n,
        "train_seconds": round(train_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", required=True, help="Comma-separated seeds, e.g. 13,14.")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="From: sigmoid, soft.")
    ap.add_argument("--per-epoch", type=int, default=12000, help="Training texts per epoch.")
    add_training_options(ap, DEFAULT_OUT, 3)
    args = ap.parse_args()
    seeds = parse_seeds(ap, args.seeds)
    variants = parse_choices(ap, args.variants, VARIANTS, "variants")
    torch.set_num_threads(args.threads)

    setup = {
        "dataset": "goemotions",
        "model": "encoder (emoscope.training, GoEmotions head only, 3 frozen layers)",
        "epochs": args.epochs,
        "per_epoch": args.per_epoch,
        "limit": args.limit,
        "torch_threads": args.threads,
    }
    summary = run_grid(
        args.out,
        setup,
        lambda old: old == setup,
        "variant",
        variants,
        seeds,
        KEYS,
        lambda variant, seed, folder: run_one(variant, seed, args, folder),
    )
    for variant, s in summary.items():
        d, t = s["dev_macro_f1"], s["test_macro_f1"]
        print(
            f"{variant:>8}: dev macro-F1 {d['mean']:.4f} ± {d['sd']:.4f}, "
            f"test macro-F1 {t['mean']:.4f} ± {t['sd']:.4f} (seeds {s['seeds']})"
        )


if __name__ == "__main__":
    main()
