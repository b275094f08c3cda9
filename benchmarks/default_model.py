"""Accuracy and calibration of the default model on the real TEST splits.

    python benchmarks/default_model.py [--model DIR]

Writes ``benchmarks/results/default_model.json``: MELD and EmoryNLP weighted-F1 (their heads,
utterances read in dialogue context), GoEmotions macro-F1 (28 labels, multi-label with the
dev-tuned thresholds) and the Ekman-mapped scores, EmoBank Pearson r for V/A/D, and MELD ECE /
Brier with the fitted temperature and with temperature 1 (before scaling), next to the targets of
the issue. Also prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from emoscope._io import write_json
from emoscope.datasets import load_dataset
from emoscope.evaluate import evaluate
from emoscope.recognizers.encoder import EncoderRecognizer, default_model_path

TARGETS = {
    "meld_weighted_f1": (0.60, 0.65),
    "emorynlp_weighted_f1": (0.36, 0.40),
    "goemotions_macro_f1": (0.44, 0.48),
    "emobank_r_valence": (0.75, 0.80),
    "emobank_r_arousal": (0.45, 0.55),
    "emobank_r_dominance": (0.35, 0.45),
}
ECE_TARGET = (0.06, 0.04)


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (results stay portable)."""
    p = Path(path).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--out", default="benchmarks/results/default_model.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    scores: dict[str, Any] = {}
    runs: dict[str, Any] = {}

    def run(key: str, output_taxonomy: str, dataset: str, **kw: Any) -> Any:
        rec = EncoderRecognizer(args.model, taxonomy=output_taxonomy)
        res = evaluate(rec, load_dataset(dataset, "test", **kw), progress=False)
        runs[key] = {
            "classification": res.classification
            and {
                k: res.classification[k]
                for k in ("accuracy", "weighted_f1", "macro_f1", "micro_f1")
            },
            "calibration": res.calibration and {k: res.calibration[k] for k in ("ece", "brier")},
            "vad": res.vad,
            "n": res.n,
            "mapping": res.mapping,
            "texts_per_second": round(res.texts_per_second, 1),
        }
        return rec, res

    rec, meld = run("meld", "meld", "meld")
    scores["meld_weighted_f1"] = meld.classification["weighted_f1"]
    scores["meld_ece"] = meld.calibration["ece"]
    scores["meld_brier"] = meld.calibration["brier"]
    rec.config.head("meld").temperature = 1.0
    before = evaluate(rec, load_dataset("meld", "test"), progress=False)
    scores["meld_ece_before_scaling"] = before.calibration["ece"]
    scores["meld_brier_before_scaling"] = before.calibration["brier"]
    _, emory = run("emorynlp", "emorynlp", "emorynlp")
    scores["emorynlp_weighted_f1"] = emory.classification["weighted_f1"]
    _, go = run("goemotions", "goemotions", "goemotions")
    scores["goemotions_macro_f1"] = go.classification["macro_f1"]
    _, go_ek = run("goemotions_ekman", "ekman", "goemotions", taxonomy="ekman")
    scores["goemotions_ekman_macro_f1"] = go_ek.classification["macro_f1"]
    scores["goemotions_ekman_weighted_f1"] = go_ek.classification["weighted_f1"]
    _, eb = run("emobank", "meld", "emobank")
    for dim in ("valence", "arousal", "dominance"):
        scores[f"emobank_r_{dim}"] = eb.vad[dim]["pearson_r"]
    verdict = {
        k: {
            "value": round(scores[k], 4),
            "must": must,
            "aim": aim,
            "met": scores[k] >= must,
            "aim_met": scores[k] >= aim,
        }
        for k, (must, aim) in TARGETS.items()
    }
    verdict["meld_ece"] = {
        "value": round(scores["meld_ece"], 4),
        "must": ECE_TARGET[0],
        "aim": ECE_TARGET[1],
        "met": scores["meld_ece"] <= ECE_TARGET[0],
        "aim_met": scores["meld_ece"] <= ECE_TARGET[1],
    }
    write_json(
        args.out,
        {
            "model": _shown(args.model),
            "config": rec.config.to_dict()["training"],
            "scores": {k: round(v, 4) for k, v in scores.items()},
            "targets": verdict,
            "runs": runs,
            "split": "test",
            "seconds": round(time.perf_counter() - t0, 1),
            "date": time.strftime("%Y-%m-%d"),
        },
    )
    print("| metric | value | must | aim | met |\n|---|---|---|---|---|")
    for k, v in verdict.items():
        print(
            f"| {k} | {v['value']:.4f} | {v['must']} | {v['aim']} | {'yes' if v['met'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
