"""Layer-wise emotion probes on all-MiniLM-L6-v2 against a random-init control.

Real run for issue 5: GoEmotions (Ekman-mapped, single-label comments only) and MELD
(utterances without context). For every hidden-state layer (0 = embeddings, 1-6 = blocks) of the
pretrained encoder and of a randomly initialised copy (same config and tokenizer), mean-pooled
activations are probed with a linear (L2 logistic regression, penalty picked on a held-out slice
of the training subsample) and, unless ``--no-mlp``, an MLP probe; held-out accuracy and
macro-F1 with percentile bootstrap 95% intervals (1000 resamples of the test subsample).

Sized for 2 heavily contended CPU cores (measured ~38 ms per text for MiniLM under the load of
the other jobs on this machine): random subsamples of 4,000 training and 1,000 test texts per
dataset (recorded in the JSON), texts truncated to 64 tokens, torch limited to one thread.
Larger subsamples: ``--max-train 8000 --max-test 2000``.

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python benchmarks/probe_minilm.py

Writes ``benchmarks/results/probe_minilm.json`` and ``docs/probe_minilm.png``.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (("goemotions", "ekman"), ("meld", None))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _log_step(prefix: str, msg: str) -> None:
    _log(f"{prefix} {msg}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-train", type=int, default=4000)
    ap.add_argument("--max-test", type=int, default=1000)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-mlp", action="store_true", help="Linear probes only.")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_minilm.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "probe_minilm.png"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import transformers

    from emoscope import __version__
    from emoscope._io import write_json
    from emoscope.activations import extract_activations, load_model
    from emoscope.base_model import resolve_base_model
    from emoscope.datasets import load_dataset
    from emoscope.probe import (
        classification_scores,
        plot_layer_curves,
        prepare_probe_data,
        probe_layers,
    )

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    source = resolve_base_model()
    kinds = ("linear",) if args.no_mlp else ("linear", "mlp")
    results: dict[str, Any] = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_source": {"location": source.location, "source": source.source},
        "settings": {
            "max_train": args.max_train,
            "max_test": args.max_test,
            "subsample": "uniform random without replacement (seed below), after keeping "
            "single-label examples only",
            "max_length_tokens": args.max_length,
            "pooling": "mean over real tokens",
            "layers": "hidden states 0 (embeddings) to 6 (last block)",
            "probes": list(kinds),
            "linear_probe": "multinomial logistic regression, L2 penalty chosen from "
            "1e-3, 1e-2, 1e-1, 1 by accuracy on 15% of the training subsample, refitted on "
            "all of it (L-BFGS, at most 100 iterations, standardised features)",
            "mlp_probe": "1 hidden layer of 256 ReLU units, dropout 0.1, Adam 1e-3, weight "
            "decay 1e-4, early stopping on 10% of the training subsample",
            "control": "the same architecture and tokenizer with random weights "
            "(AutoModel.from_config, torch seed = seed)",
            "bootstrap": f"percentile, {args.n_boot} resamples of the test subsample, 95%",
            "seed": args.seed,
            "torch_threads": args.threads,
        },
        "environment": {
            "emoscope": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "datasets": {},
    }
    models = {
        "model": load_model(None, seed=args.seed),
        "control": load_model(None, random_init=True, seed=args.seed),
    }
    panels = []
    baselines = []
    for name, taxonomy in DATASETS:
        t_ds = time.perf_counter()
        tr = load_dataset(name, "train", root=args.data_root, taxonomy=taxonomy)
        te = load_dataset(name, "test", root=args.data_root, taxonomy=taxonomy)
        data = prepare_probe_data(
            tr, te, max_train=args.max_train, max_test=args.max_test, seed=args.seed
        )
        _log(f"{name}: {len(data.train_texts)} train / {len(data.test_texts)} test")
        counts = np.bincount(data.train_y, minlength=len(data.labels))
        majority = int(counts.argmax())
        maj_acc, maj_f1 = classification_scores(data.test_y, np.full_like(data.test_y, majority))
        entry: dict[str, Any] = {
            "taxonomy": tr.taxonomy.name if tr.taxonomy is not None else None,
            "labels": list(data.labels),
            "data": data.notes,
            "majority_baseline": {
                "label": data.labels[majority],
                "accuracy": maj_acc,
                "macro_f1": maj_f1,
            },
            "curves": {},
            "seconds": {},
        }
        for variant, lm in models.items():
            t1 = time.perf_counter()
            acts = {
                split: extract_activations(
                    lm,
                    texts,
                    layers="all",
                    pooling="mean",
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                )
                for split, texts in (("train", data.train_texts), ("test", data.test_texts))
            }
            t2 = time.perf_counter()
            _log(f"{name} {variant}: activations in {t2 - t1:.0f}s")
            entry["seconds"][f"{variant}_extract"] = t2 - t1
            for kind in kinds:
                t3 = time.perf_counter()
                curve, _ = probe_layers(
                    acts["train"],
                    data.train_y,
                    acts["test"],
                    data.test_y,
                    kind=kind,
                    n_classes=len(data.labels),
                    n_boot=args.n_boot,
                    seed=args.seed,
                    progress=functools.partial(_log_step, f"{name} {variant} {kind}"),
                )
                curve.random_init = variant == "control"
                entry["curves"][f"{kind}/{variant}"] = curve.to_dict()
                entry["seconds"][f"{variant}_{kind}_probe"] = time.perf_counter() - t3
        best = entry["curves"]["linear/model"]["best_layer"]
        entry["summary"] = {
            "best_layer_linear_macro_f1": best["macro_f1"],
            "best_linear_model": max(
                entry["curves"]["linear/model"]["scores"], key=lambda s: s["macro_f1"]
            ),
            "best_linear_control": max(
                entry["curves"]["linear/control"]["scores"], key=lambda s: s["macro_f1"]
            ),
        }
        entry["seconds"]["total"] = time.perf_counter() - t_ds
        results["datasets"][name] = entry
        title = "GoEmotions → Ekman" if name == "goemotions" else "MELD"
        curves = [
            (f"{kind} probe, {'MiniLM' if v == 'model' else 'random-init control'}", c)
            for key, c in entry["curves"].items()
            for kind, v in [key.split("/")]
        ]
        panels.append((title, curves))
        baselines.append({"majority class": entry["majority_baseline"]})
        write_json(args.out, results)  # keep partial results if a later dataset fails
    results["seconds_total"] = time.perf_counter() - t0
    write_json(args.out, results)
    plot_layer_curves(panels, args.figure, baselines=baselines)
    _log(f"wrote {args.out} and {args.figure} in {results['seconds_total']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
