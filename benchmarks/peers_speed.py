"""What users would pick instead of emoscope, side by side → results/peers_speed.json.

Speed (MELD test, 2,610 utterances; each system in its own subprocess so RSS is its own):

- ``emoscope``: the default model as ``emoscope.load()`` gives it, utterances read in their
  dialogues' context;
- ``hf-pipeline``: ``transformers.pipeline("text-classification")`` over a
  ``RobertaForSequenceClassification`` with distilroberta-base's shape (6 layers, hidden 768; the
  architecture of the most used English emotion classifier), randomly initialised from its config
  (no weights offline: speed only), fed MiniLM's WordPiece tokenizer (distilroberta's BPE files
  are not offline either; token counts are similar), each text alone (no context), batch 64;
- ``optimum-onnx``: the same through optimum's ONNX Runtime export, when optimum's ONNX exporter
  installs without changing pinned versions (recorded as unavailable otherwise).

Utterances/s (median of ``--repeats``), single-text latency p50/p95 (200 texts), peak RSS, and
ratios to emoscope.

Training on your own labels: SetFit (Tunstall et al., 2022, "Efficient Few-Shot Learning Without
Prompts"; contrastive fine-tuning of the same all-MiniLM-L6-v2 weights, then a logistic-regression
head; 20 pair iterations, 1 epoch, batch 16 — its documented defaults) against ``emoscope train
--dataset`` (its defaults; the training file doubles as ``--dev``, so neither system sees extra
labels) on user-style data: ``--shots`` examples per label drawn (``--draws`` seeds) from
GoEmotions train (comments whose labels map to a single Ekman label) and MELD train
(utterances without context). Test macro-F1 on the matching test split (texts alone) and training
wall time. SetFit runs in the Python given by ``--setfit-python`` (a separate venv when
installing SetFit into the project's would change pinned versions). A third row,
``minilm-logreg``, is the floor both fine-tuners start from: logistic regression (scikit-learn
defaults) on the frozen, normalised all-MiniLM-L6-v2 sentence embeddings of the same draw.

Every part is checkpointed into the results file with the load averages around it; a rerun
measures only what is missing (or named in ``--redo``), so it can be run in the background and
resumed:

    python benchmarks/peers_speed.py --setfit-python /work/venv-setfit/bin/python
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DISTILROBERTA_BASE, run_parts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "peers_speed.json"
SPEED = ("emoscope", "hf-pipeline", "optimum-onnx")
DATASETS = {"goemotions-ekman": ("goemotions", "ekman"), "meld": ("meld", "meld")}
TRAINERS = ("emoscope", "setfit", "minilm-logreg")


# -- speed ------------------------------------------------------------------------------------
def _texts_and_inputs() -> tuple[list[str], list[Any]]:
    from emoscope.datasets import load_dataset

    ds = load_dataset("meld", "test")
    return [e.text for e in ds.examples], ds.inputs()


def _hf_classifier() -> Any:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(**DISTILROBERTA_BASE, num_labels=7)
    return RobertaForSequenceClassification(cfg).eval()


def _minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model

    return AutoTokenizer.from_pretrained(resolve_base_model(DEFAULT_BASE_MODEL).location)


def speed(system: str, repeats: int) -> dict[str, Any]:
    """Throughput, latency and RSS of one system in this process."""
    import torch

    torch.set_num_threads(2)
    texts, inputs = _texts_and_inputs()
    if system == "emoscope":
        from emoscope.recognizers.encoder import EncoderRecognizer

        rec = EncoderRecognizer()
        info = {"backend": rec.backend, "context": True}

        def batch() -> Any:
            return rec.predict(inputs)

        def one(t: str) -> Any:
            return rec.predict([t])

    elif system == "hf-pipeline":
        from transformers import pipeline

        pipe = pipeline(
            "text-classification", model=_hf_classifier(), tokenizer=_minilm_tokenizer(), device=-1
        )
        info = {"model": "RobertaForSequenceClassification, distilroberta-base config, random"}

        def batch() -> Any:
            return pipe(texts, batch_size=64, truncation=True)

        def one(t: str) -> Any:
            return pipe(t)

    else:
        raise SystemExit(f"unknown system {system}")
    batch()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        batch()
        runs.append(time.perf_counter() - t0)
    lat = []
    for t in texts[:200]:
        t0 = time.perf_counter()
        one(t)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {
        **info,
        "utterances": len(texts),
        "batch_seconds": [round(r, 3) for r in runs],
        "utterances_per_second_median": round(len(texts) / statistics.median(runs), 1),
        "latency_ms_p50": round(statistics.median(lat), 2),
        "latency_ms_p95": round(lat[int(0.95 * len(lat)) - 1], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _optimum_status() -> dict[str, Any]:
    try:
        import optimum.onnxruntime  # noqa: F401
    except ImportError as e:
        return {
            "available": False,
            "why": "optimum's ONNX Runtime support (optimum-onnx / optimum[onnxruntime]) is not "
            f"installed: pip's resolver finds no version compatible with the pinned "
            f"transformers/onnx ({e})",
        }
    return {"available": True, "why": "installed but not measured by this script version"}


# -- few-shot training -----------------------------------------------------------------------
def _single_label(dataset: str, taxonomy: str, split: str) -> list[tuple[str, str]]:
    """(text, label) pairs with exactly one label in ``taxonomy``."""
    from emoscope.datasets import load_dataset
    from emoscope.labels import get_taxonomy, map_label

    ds = load_dataset(dataset, split)
    src = get_taxonomy(dataset)
    out = []
    for e in ds.examples:
        labels = {map_label(lab, src, taxonomy) for lab in e.labels}
        if len(labels) == 1:
            out.append((e.text, labels.pop()))
    return out


def _draw(pool: list[tuple[str, str]], shots: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for row in pool:
        by_label.setdefault(row[1], []).append(row)
    out = []
    for label in sorted(by_label):
        rows = by_label[label]
        out.extend(rng.sample(rows, min(shots, len(rows))))
    rng.shuffle(out)
    return out


def _macro_f1(gold: list[str], pred: list[str]) -> float:
    from emoscope.metrics import classification_report

    labels = sorted(set(gold) | set(pred))
    return float(classification_report(gold, pred, labels=labels)["macro_f1"])


def train_run(system: str, data: str, shots: int, draw: int) -> dict[str, Any]:
    """Train one system on one draw and score it on the test split (in this process)."""
    dataset, taxonomy = DATASETS[data]
    train = _draw(_single_label(dataset, taxonomy, "train"), shots, 1000 * shots + draw)
    test = _single_label(dataset, taxonomy, "test")
    texts, gold = [t for t, _ in test], [lab for _, lab in test]
    with tempfile.TemporaryDirectory(prefix="emoscope-peers-") as tmp:
        if system == "setfit":
            from setfit import SetFitModel, Trainer, TrainingArguments

            from datasets import Dataset
            from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model

            t0 = time.perf_counter()
            model = SetFitModel.from_pretrained(resolve_base_model(DEFAULT_BASE_MODEL).location)
            trainer = Trainer(
                model=model,
                args=TrainingArguments(
                    output_dir=str(Path(tmp) / "setfit"),
                    batch_size=16,
                    num_epochs=1,
                    num_iterations=20,
                    seed=draw,
                    report_to="none",
                ),
                train_dataset=Dataset.from_dict(
                    {"text": [t for t, _ in train], "label": [lab for _, lab in train]}
                ),
            )
            trainer.train()
            train_s = time.perf_counter() - t0
            pred = [str(p) for p in model.predict(texts, batch_size=64)]
        elif system == "minilm-logreg":
            from sentence_transformers import SentenceTransformer
            from sklearn.linear_model import LogisticRegression

            from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model

            t0 = time.perf_counter()
            st = SentenceTransformer(resolve_base_model(DEFAULT_BASE_MODEL).location, device="cpu")
            x = st.encode([t for t, _ in train], batch_size=64, normalize_embeddings=True)
            clf = LogisticRegression(max_iter=2000).fit(x, [lab for _, lab in train])
            train_s = time.perf_counter() - t0
            xt = st.encode(texts, batch_size=64, normalize_embeddings=True)
            pred = [str(p) for p in clf.predict(xt)]
        elif system == "emoscope":
            path = Path(tmp) / "train.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["text", "label"])
                w.writerows(train)
            exe = Path(sys.executable).with_name("emoscope")
            t0 = time.perf_counter()
            subprocess.run(
                [
                    str(exe),
                    "train",
                    "--dataset",
                    str(path),
                    "--dev",
                    str(path),
                    "-t",
                    taxonomy,
                    "--seed",
                    str(draw),
                    "--out",
                    str(Path(tmp) / "model"),
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            train_s = time.perf_counter() - t0
            from emoscope.recognizers.encoder import EncoderRecognizer

            rec = EncoderRecognizer(Path(tmp) / "model", taxonomy=taxonomy)
            pred = [p.label for p in rec.predict(texts)]
        else:
            raise ValueError(f"unknown system {system!r}; expected one of {', '.join(TRAINERS)}")
    return {
        "system": system,
        "data": data,
        "shots_per_label": shots,
        "draw": draw,
        "train_examples": len(train),
        "test_examples": len(test),
        "test_macro_f1": round(_macro_f1(gold, pred), 4),
        "train_seconds": round(train_s, 1),
    }


# -- driver -----------------------------------------------------------------------------------
def _child(python: str, args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [python, __file__, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"], "failed": True}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _summary(parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = parts.get("speed:emoscope", {})
    if base.get("utterances_per_second_median"):
        out["speed_vs_emoscope"] = {
            name.removeprefix("speed:"): {
                "throughput_ratio": round(
                    r["utterances_per_second_median"] / base["utterances_per_second_median"], 3
                ),
                "latency_p50_ratio": round(r["latency_ms_p50"] / base["latency_ms_p50"], 3),
                "rss_ratio": round(r["peak_rss_mb"] / base["peak_rss_mb"], 3),
            }
            for name, r in parts.items()
            if name.startswith("speed:") and "utterances_per_second_median" in r
        }
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, r in parts.items():
        if name.startswith("train:") and "test_macro_f1" in r:
            key = f"{r['system']}:{r['data']}:{r['shots_per_label']}"
            groups.setdefault(key, []).append(r)
    out["training"] = {
        k: {
            "draws": len(v),
            "test_macro_f1_mean": round(statistics.fmean(x["test_macro_f1"] for x in v), 4),
            "test_macro_f1_sd": round(statistics.stdev(x["test_macro_f1"] for x in v), 4)
            if len(v) > 1
            else 0.0,
            "train_seconds_median": statistics.median(x["train_seconds"] for x in v),
        }
        for k, v in sorted(groups.items())
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shots", default="8,16,64")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--data", default="goemotions-ekman,meld")
    ap.add_argument("--systems", default=",".join(TRAINERS), help="trainers to run")
    ap.add_argument("--setfit-python", default=sys.executable)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument(
        "--skip-speed", action="store_true", help="training parts only (speed wants a quiet CPU)"
    )
    ap.add_argument("--redo", default="", help="comma-separated part names to measure again")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "speed":
            res = speed(args.child[1], args.repeats)
        else:
            system, data, shots, draw = args.child[1:]
            res = train_run(system, data, int(shots), int(draw))
        print(json.dumps(res))
        return
    systems = [s for s in args.systems.split(",") if s]
    if unknown := sorted(set(systems) - set(TRAINERS)):
        ap.error(f"unknown --systems {unknown}; expected some of {', '.join(TRAINERS)}")
    names = [] if args.skip_speed else [f"speed:{s}" for s in SPEED]
    if not args.skip_training:
        for draw in range(args.draws):  # every cell gets one draw before any gets a second
            for shots in (int(x) for x in args.shots.split(",")):
                for data in args.data.split(","):
                    names += [f"train:{sys_}:{data}:{shots}:{draw}" for sys_ in systems]

    def run_part(name: str) -> dict[str, Any]:
        kind, *rest = name.split(":")
        if name == "speed:optimum-onnx":
            return _optimum_status()
        if kind == "speed":
            return _child(
                sys.executable, ["--repeats", str(args.repeats), "--child", "speed", *rest]
            )
        python = args.setfit_python if rest[0] == "setfit" else sys.executable
        return _child(python, ["--child", "train", *rest])

    header = {
        "benchmark": "peers_speed",
        "setfit_python": args.setfit_python,
        "note": "Parts measured one after another by this script, each in its own process; "
        "'contended' marks parts during which other jobs shared the CPU.",
    }
    parts = run_parts(
        args.out, header, names, run_part, redo=[p for p in args.redo.split(",") if p]
    )
    from emoscope._io import write_json

    write_json(args.out, {**header, "parts": parts, "summary": _summary(parts)})
    print(json.dumps(_summary(parts), indent=1))


if __name__ == "__main__":
    main()
