"""Context-input ablation of the encoder model on MELD: vector context vs EmoBERTa-style input.

EmoBERTa (Kim & Vossen, 2021, "EmoBERTa: Speaker-Aware Emotion Recognition in Conversation with
RoBERTa", arXiv:2108.12009) puts the past turns with speaker names inside the encoder's token
sequence, the target marked. The model option ``context_input``
(:attr:`emoscope.recognizers.encoder_model.EncoderConfig.context_input`, built by
:func:`~emoscope.recognizers.encoder_model.input_token_ids`) has three values, the variants here:

- ``vector`` (today's default): each utterance encoded alone, a small causal transformer over
  the utterance vectors with speaker embeddings;
- ``sequence``: ``[CLS] Ross: ... Rachel: ... [SEP] Monica: <target> [SEP]`` in at most
  ``--sequence-length`` tokens (past cut from the left), the target segment mean-pooled; no
  vector-level context model;
- ``both``: the sequence input and the vector-level context model over its vectors.

Everything else is the encoder trainer's default (:mod:`emoscope.training`, MELD head only,
under bfloat16 autocast, ``TrainConfig.bf16``: about twice as fast here, ``--fp32`` to
turn it off). For each variant and seed the script trains a
model, keeps the best epoch by dev score (as the trainer does) and records the dev weighted-F1
per epoch, the test weighted-F1 of the saved model (best dev epoch), the training seconds, and
the inference speed of the saved model (the default ``auto`` backend): utterances/s over the
MELD test dialogues (with context) and the p50 latency of single texts. Then mean ± sample sd
over the seeds. Results go to ``benchmarks/results/context_input_ablation.json`` (each finished
run is written at once; finished (variant, seed) pairs are skipped on rerun).

    python benchmarks/ablation_context_input.py --seeds 13,14
    python benchmarks/ablation_context_input.py --seeds 1 --limit 60 --epochs 1 --out /tmp/s.json

``--limit N`` uses only the first N utterances (whole dialogues) of every split: a smoke test of
the script, not a measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from _common import (
    add_training_options,
    machine_info,
    parse_choices,
    parse_seeds,
    run_grid,
    train_and_test,
    training_setup,
)
from emoscope.datasets import load_dataset
from emoscope.recognizers.encoder import EncoderRecognizer
from emoscope.recognizers.encoder_model import CONTEXT_INPUTS
from emoscope.training import TrainConfig

DEFAULT_OUT = Path("benchmarks/results/context_input_ablation.json")
KEYS = (
    "dev_weighted_f1",
    "test_weighted_f1",
    "train_seconds",
    "test_utterances_per_second",
    "single_text_latency_ms_p50",
)
SINGLE_TEXTS = 50


def speed(folder: Path, dialogues: list[Any], texts: list[str], passes_n: int) -> dict[str, Any]:
    """Utterances/s over ``dialogues`` (the fastest of ``passes_n`` passes) and single-text
    latency p50."""
    rec = EncoderRecognizer(folder)
    rec.predict(dialogues[:5])  # warm-up
    n = sum(len(d) for d in dialogues)
    passes = []
    for _ in range(passes_n):
        t0 = time.perf_counter()
        rec.predict(dialogues)
        passes.append(time.perf_counter() - t0)
    lat = []
    for text in texts:
        t0 = time.perf_counter()
        rec.predict([text])
        lat.append(1000 * (time.perf_counter() - t0))
    return {
        "backend": rec.backend,
        "test_utterances": n,
        "test_pass_seconds": [round(s, 3) for s in passes],
        "test_utterances_per_second": round(n / min(passes), 1),
        "single_text_latency_ms_p50": round(statistics.median(lat), 2),
    }


def run_one(variant: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Train one model; score it on MELD dev (best epoch) and test; time its inference."""
    load0 = os.getloadavg()
    tc = TrainConfig(
        tasks=("meld",),
        epochs=args.epochs,
        seed=seed,
        limit=args.limit,
        data_root=args.data_root,
        context_input=variant,
        sequence_length=args.sequence_length,
        bf16=not args.fp32,
    )
    if args.max_per_epoch:
        tc.max_per_epoch = {"meld": args.max_per_epoch}
    log, best, result, train_s = train_and_test(tc, folder, args, "meld")
    dev = [e["dev"]["meld"]["weighted_f1"] for e in log["epochs"]]
    limited = load_dataset("meld", "test", args.data_root).limit(args.limit)
    assert limited.dialogues is not None
    texts = [e.text for e in limited.examples[:SINGLE_TEXTS]]
    return {
        "variant": variant,
        "seed": seed,
        "best_epoch": best + 1,
        "dev_weighted_f1": dev[best],
        "dev_weighted_f1_per_epoch": dev,
        "test_weighted_f1": result.classification["weighted_f1"],
        "test_n": result.n,
        "train_seconds": round(train_s, 1),
        "cache_seconds": log["seconds"]["cache"],
        "epoch_seconds": [e["seconds"] for e in log["epochs"]],
        **speed(folder, list(limited.dialogues), texts, args.speed_passes),
        "machine": machine_info(load0, "other engineers' jobs shared the 2-core CPU"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", required=True, help="Comma-separated seeds, e.g. 13,14.")
    ap.add_argument(
        "--variants",
        default="sequence,both,vector",
        help=f"Comma-separated, from: {', '.join(CONTEXT_INPUTS)}.",
    )
    ap.add_argument("--sequence-length", type=int, default=TrainConfig.sequence_length)
    ap.add_argument(
        "--fp32", action="store_true", help="Train in float32 (default: bfloat16 autocast)."
    )
    ap.add_argument(
        "--max-per-epoch",
        type=int,
        default=None,
        help="Train on this many random MELD dialogue windows per epoch (default: all 1,038).",
    )
    ap.add_argument("--speed-passes", type=int, default=2, help="Timed passes over MELD test.")
    add_training_options(ap, DEFAULT_OUT, TrainConfig.epochs)
    args = ap.parse_args()
    seeds = parse_seeds(ap, args.seeds)
    variants = parse_choices(ap, args.variants, CONTEXT_INPUTS, "variants")
    torch.set_num_threads(args.threads)

    setup = training_setup(
        args,
        "meld",
        "encoder (emoscope.training, MELD head only)",
        max_per_epoch=args.max_per_epoch,
        max_seq_length=TrainConfig.max_seq_length,
        max_turns=TrainConfig.max_turns,
        sequence_length=args.sequence_length,
        sequence_input="[CLS] past [SEP] name: target [SEP]; past = earlier turns of the "
        "window as 'name: text', oldest tokens cut first; target segment mean-pooled",
        training_precision="float32" if args.fp32 else "bfloat16 autocast (all variants)",
        inference_backend="auto (torch-bf16 on this CPU)",
        note="Runs one after another at nice 5 while other engineers' jobs (niced LLM "
        "benchmarks, test suites) shared the 2-core CPU: train seconds and speeds are "
        "indicative; each run records its load averages.",
    )
    summary = run_grid(
        args.out,
        setup,
        lambda old: (
            old.get("limit") == args.limit
            and old.get("epochs") == args.epochs
            and old.get("sequence_length") == args.sequence_length
            and old.get("training_precision") == setup["training_precision"]
            and old.get("max_per_epoch") == args.max_per_epoch
        ),
        "variant",
        variants,
        seeds,
        KEYS,
        lambda variant, seed, folder: run_one(variant, seed, args, folder),
    )
    for variant, s in summary.items():
        d, t = s["dev_weighted_f1"], s["test_weighted_f1"]
        print(
            f"{variant:>8}: dev wF1 {d['mean']:.4f} ± {d['sd']:.4f}, "
            f"test wF1 {t['mean']:.4f} ± {t['sd']:.4f}, "
            f"{s['test_utterances_per_second']['mean']:.0f} utt/s (seeds {s['seeds']})"
        )


if __name__ == "__main__":
    main()
