"""A LoRA adapter merged into its base weights vs applied beside them, at inference.

``emoscope.models.load_causal_lm`` folds a frozen adapter into the base weights
(``merge_adapter=True``, PEFT's ``merge_adapter``): each adapted linear layer then runs one
matrix product instead of the base product plus two low-rank ones. LoRA (Hu et al., ICLR 2022,
"LoRA: Low-Rank Adaptation of Large Language Models") notes this merge as the reason the method
adds no inference latency. On a CPU the saving is not only arithmetic: an r = 32 adapter on
every linear layer of SmolLM2-135M adds 210 small modules, each a few extra kernel launches.

This benchmark scores the same MELD test utterances with one trained adapter of
``llm_meld.py`` (default: the ``lora-r`` row's, found in its work folder) both ways, in float32
and, where the CPU has native bf16, under bf16 autocast (as the LoRA rows score), interleaved
round by round. It records seconds per utterance (median over rounds), and how far the merged
label scores are from the unmerged ones: mean and largest |difference| of the label
log-likelihoods, argmax agreement, and raw accuracy and weighted-F1 of each way on the sample.
Merging before bf16 autocast rounds ``W + BA`` to bf16 as one matrix, so under bf16 the two
ways are not the same computation; the agreement says whether that matters.

    EMOSCOPE_BENCH_WORK=$PWD/bench_work OMP_NUM_THREADS=2 PYTHONPATH=$PWD/src \\
        .venv/bin/python benchmarks/adapter_merge.py --threads 2 --machine-note "..."
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _common import WORK, bf16_note, machine_info
from emoscope._io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "adapter_merge.json"
WAYS = ("unmerged", "merged")


def _set_merged(rec: Any, merged: bool) -> None:
    from emoscope.models import _adapter_merged

    lm = rec.backend.lm
    if merged and not _adapter_merged(lm):
        lm.merge_adapter()
    elif not merged and _adapter_merged(lm):
        lm.unmerge_adapter()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="as llm_meld.py --model")
    ap.add_argument("--row", default="lora-r", help="the llm_meld.py LoRA row whose adapter")
    ap.add_argument("--adapter", type=Path, default=None, help="default: the row's adapter")
    ap.add_argument("--n", type=int, default=96, help="test utterances (whole dialogues)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--machine-note", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    from emoscope.datasets import load_dataset
    from emoscope.metrics import classification_report
    from emoscope.recognizers.precision import bf16_native
    from llm_meld import (
        LABELS,
        ROWS,
        _recognizer,
        label_score_matrix,
        score_agreement,
        select_dialogues,
    )

    if args.row not in ROWS or "curriculum" not in ROWS[args.row]:
        ap.error(f"--row must be a LoRA row of llm_meld.py, got {args.row!r}")
    if args.n < 1 or args.rounds < 1:
        ap.error(f"--n and --rounds must be at least 1, got {args.n} and {args.rounds}")
    work = WORK / "llm_meld" / args.model.replace("/", "_")
    adapter = args.adapter or work / args.row / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        print(
            f"{adapter}: no adapter_config.json; train the row first "
            f"(llm_meld.py --rows {args.row}) or pass --adapter",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    data = select_dialogues(load_dataset("meld", "test", root=args.data_root), args.n, 0)
    inputs = data.inputs()
    gold = [e.labels[0] for e in data.examples]
    precisions = (False, True) if bf16_native() else (False,)
    run: dict[str, Any] = {"adapter": str(adapter), "row": args.row, "n_utterances": len(gold)}
    for bf16 in precisions:
        tag = "bf16" if bf16 else "fp32"
        rec = _recognizer(str(adapter), ROWS[args.row], work, bf16, args.data_root)
        rec.predict(inputs[:1])  # warm-up (and the retrieval store, if any)
        seconds: dict[str, list[float]] = {w: [] for w in WAYS}
        scores: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for way in WAYS:
                _set_merged(rec, way == "merged")
                t0 = time.perf_counter()
                preds = rec.predict(inputs)
                seconds[way].append((time.perf_counter() - t0) / len(preds))
                scores[way] = label_score_matrix(preds)
        median = {w: statistics.median(seconds[w]) for w in WAYS}
        entry: dict[str, Any] = {
            "seconds_per_utterance": seconds,
            "seconds_per_utterance_median": median,
            "speedup_merged": median["unmerged"] / median["merged"],
            **score_agreement(scores["merged"], scores["unmerged"]),
        }
        for way in WAYS:
            rep = classification_report(gold, [LABELS[i] for i in scores[way].argmax(1)], LABELS)
            entry[f"{way}_raw_accuracy"] = rep["accuracy"]
            entry[f"{way}_raw_weighted_f1"] = rep["weighted_f1"]
        run[tag] = entry
        print(f"{tag}: {entry}", flush=True)
        del rec
    run["threads"] = args.threads
    run["machine"] = machine_info(load0, args.machine_note)
    run["bf16_note"] = bf16_note()
    write_json(args.out, run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
