"""LoRA training step cost on SmolLM2-135M-Instruct: what the trainer's two savings buy here.

The LoRA rows of ``llm_meld.py`` (issue 11) train r = 32 adapters on every linear layer with
micro-batches of 4 plain-prompt MELD items. ``emoscope.llm.sft`` saves work in two ways:

* ``answer_loss`` computes the LM head only at the positions that predict an answer token;
  ``model(**batch).loss`` (what the trainer did before) projects every position onto the
  49,152-token vocabulary and back-propagates through all of them;
* length-grouped micro-batches (``SFTConfig.length_group``, default 16): each window of
  16 micro-batches of the epoch's order is sorted by length before it is cut, so less padding.

Four variants are timed on the same items, interleaved round by round (forward, backward and
the AdamW step, per item): ``full-head`` (ungrouped, the old trainer), ``answer-loss``
(ungrouped), ``answer-loss+grouped``, and ``answer-loss+grouped+bf16`` (the forward pass under
bf16 autocast, as ``SFTConfig.bf16_autocast``; native on CPUs with AVX-512 BF16 or AMX,
emulated and slower elsewhere). The loss of the first grouped micro-batch in float32 and in
bf16, before any step, is recorded beside the times, and the padded share of the tokens of
the whole 2,006-utterance train subset of ``llm_meld.py`` under both orders. One run per
``--threads`` value; each run adds its entry to ``benchmarks/results/lora_speed.json``.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD/src taskset -c 0 .venv/bin/python \\
        benchmarks/lora_speed.py --threads 1 --machine-note "..."
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import bf16_note, machine_info
from emoscope._io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "lora_speed.json"
VARIANTS = ("full-head", "answer-loss", "answer-loss+grouped", "answer-loss+grouped+bf16")


def padded_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of a padded batch's token slots that are padding, over all ``batches``
    (lists of indices into ``lengths``)."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1.0 - sum(lengths[i] for b in batches for i in b) / slots


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=32, help="items timed per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--train-n", type=int, default=2000, help="as llm_meld.py --train-n")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--machine-note", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    from emoscope.datasets import load_dataset
    from emoscope.llm.sft import (
        _collate,
        _lora_model,
        _micro_batches,
        answer_loss,
        build_examples,
        encode_example,
    )
    from emoscope.models import autocast
    from llm_meld import plain_lora_config, select_dialogues

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    config = plain_lora_config(args.model)
    train = select_dialogues(load_dataset("meld", "train", root=args.data_root), args.train_n, 0)
    examples = build_examples(config, data=train)
    tokenizer, model, device = _lora_model(config)
    pad_id = int(tokenizer.pad_token_id)
    encoded = [
        encode_example(tokenizer, e.messages, e.response, config.max_seq_len)[:2] for e in examples
    ]
    lengths = [len(ids) for ids, _ in encoded]
    order = list(range(len(encoded)))
    random.Random(config.seed).shuffle(order)  # an epoch's shuffled order, as the trainer's
    plain = _micro_batches(order, [lengths[i] for i in order], config.batch_size)
    grouped = _micro_batches(
        order, [lengths[i] for i in order], config.batch_size, config.length_group
    )
    padding = {"ungrouped": padded_share(lengths, plain), "grouped": padded_share(lengths, grouped)}
    print(f"{len(encoded)} items, padded share {padding}", flush=True)

    # The timed sample: the first n items of the epoch order, batched both ways.
    sample = order[: args.n]
    sample_lengths = [lengths[i] for i in sample]
    batches = {
        "full-head": _micro_batches(sample, sample_lengths, config.batch_size),
        "answer-loss": _micro_batches(sample, sample_lengths, config.batch_size),
        "answer-loss+grouped": _micro_batches(
            sample, sample_lengths, config.batch_size, config.length_group
        ),
    }
    batches["answer-loss+grouped+bf16"] = batches["answer-loss+grouped"]
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=config.lr)
    model.train()

    def collate(chunk: Sequence[int]) -> dict[str, Any]:
        batch = _collate([encoded[i] for i in chunk], pad_id)
        return {k: v.to(device) for k, v in batch.items()}

    # The same micro-batch's loss in float32 and in bf16, before any step changes the weights.
    with torch.no_grad():
        first = collate(batches["answer-loss+grouped"][0])
        loss_fp32 = float(answer_loss(model, first))
        with autocast(True, device):
            loss_bf16 = float(answer_loss(model, first))

    def step(variant: str, chunk: Sequence[int]) -> float:
        batch = collate(chunk)
        t0 = time.perf_counter()
        with autocast(variant.endswith("+bf16"), device):
            loss = model(**batch).loss if variant == "full-head" else answer_loss(model, batch)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    step("answer-loss", batches["answer-loss"][0])  # warm-up, not timed
    rounds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in VARIANTS:
            seconds = sum(step(variant, chunk) for chunk in batches[variant])
            rounds[variant].append(seconds / len(sample))
            print(f"round {r + 1} {variant}: {rounds[variant][-1]:.3f} s/item", flush=True)
    per_item = {v: statistics.median(xs) for v, xs in rounds.items()}
    base = per_item["full-head"]
    entry: dict[str, Any] = {
        "threads": args.threads,
        "n_items_timed": len(sample),
        "rounds": args.rounds,
        "mean_tokens_per_item_timed": statistics.mean(sample_lengths),
        "seconds_per_item_each_round": rounds,
        "seconds_per_item_median": per_item,
        "speedup_vs_full_head": {v: base / s for v, s in per_item.items()},
        "first_batch_loss": {"fp32": loss_fp32, "bf16": loss_bf16},
        "bf16_note": bf16_note(),
        "train_items": len(encoded),
        "mean_tokens_per_train_item": statistics.mean(lengths),
        "padded_share_of_train_tokens": padding,
        "length_group": config.length_group,
        "batch_size": config.batch_size,
        "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "targets": config.target_modules},
        "machine": machine_info(load0, args.machine_note),
    }
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
    results["runs"][f"threads={args.threads}"] = entry  # a rerun on this thread count replaces it
    results["model"] = args.model
    results["what"] = __doc__.split("\n\n")[0]
    write_json(args.out, results)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
