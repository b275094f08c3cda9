"""Layer-wise emotion probes inside real decoder LMs: SmolLM2-135M-Instruct and Gemma-3-270M.

Issue 12, part 1. For every hidden-state layer (0 = embeddings, 1..L = blocks) of each model and
of a randomly initialised copy (same config and tokenizer), the last-token state of every text,
rendered as a user chat turn followed by the generation prompt (the plain ``User: ...
Assistant:`` layout for Gemma-3-270M, a base model without a chat template), is probed with a
linear and an MLP probe (:mod:`emoscope.probe`) on GoEmotions (Ekman-mapped, single-label) and
MELD (utterances without context): held-out accuracy and macro-F1 with percentile bootstrap 95%
intervals. Then, on GoEmotions:

* persistence: the linear probes of a few layers read the state of the ``k``-th token of a
  neutral filler text appended after the emotional text, for ``k`` in 0..256
  (:func:`emoscope.probe.persistence_curve`);
* malleability: the shift of the probes' read-outs of the same texts under three system
  prompts (:func:`emoscope.probe.malleability`).

The zero-shot prompting baseline scores each label word by its log-likelihood as the model's
reply to a classification prompt (label scoring, :func:`emoscope.probe.zero_shot_scored`; a
distribution, nothing parsed) on the same test texts, calibrated (contextual-calibration prior
and temperature) on development texts from the training split, never on test texts. The
instruct model answers through its chat template; Gemma-3-270M, a base model, through the plain
``User: ... Assistant:`` layout (cheap, so it gets the row too).

Claims of "Decoding Emotion in the Deep" (Zhang & Zhong, 2025, arXiv:2510.04064) are checked
from the numbers at the end (``claims``).

Resumable: activations are cached per (model, variant, dataset, split) as float16 ``.npy``
under ``--cache`` and every finished section is kept in the JSON; a rerun with the same
settings skips what is done. Sized for 2 CPU cores (the load averages are recorded, and
``--machine-note`` says what else ran).

    setsid nohup .venv/bin/python benchmarks/probe_llm.py > probe_llm.log 2>&1 &

Writes ``benchmarks/results/probe_llm.json``, ``docs/probe_llm_layers.png`` and
``docs/probe_llm_persistence.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import WORK, machine_info  # noqa: E402

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
DATASETS = {"goemotions": "ekman", "meld": None}  # GoEmotions first: the analyses read it
ZERO_SHOT_ROWS = ("raw", "calibrated", "calibrated_label_prior")
SYSTEM_PROMPTS = {
    "cheerful": "You are a cheerful assistant who always sees the bright side of everything.",
    "gloomy": "You are a gloomy assistant who finds everything sad and hopeless.",
    "angry": "You are an irritable assistant who is angry about everything.",
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _log_step(prefix: str, msg: str) -> None:
    _log(f"{prefix} {msg}")


def _zero_shot(model: str, data: Any, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The label-scoring zero-shot row of one dataset (cached as JSON beside the activations)."""
    from emoscope._io import write_json
    from emoscope.llm.hf import HFBackend
    from emoscope.probe import zero_shot_scored

    n_dev = min(args.zero_shot_dev, len(data.train_texts))
    key = {"n": len(data.test_texts), "n_dev": n_dev, "n_boot": args.n_boot, "bf16": args.bf16}
    path = cache / "zero_shot.json"
    if path.is_file():
        old = json.loads(path.read_text("utf-8"))
        if old.get("key") == key:
            return dict(old["result"])
    t0 = time.perf_counter()
    backend = HFBackend(
        model, device="cpu", batch_size=args.zero_shot_batch, bf16_autocast=args.bf16
    )
    res = zero_shot_scored(
        backend, data.test_texts, data.test_y.tolist(), list(data.labels),
        dev_texts=data.train_texts[:n_dev], dev_gold=data.train_y[:n_dev].tolist(),
        batch_size=args.zero_shot_batch, n_boot=args.n_boot, seed=0,
    )  # fmt: skip
    res["layout"] = (
        "chat template"
        if getattr(backend.tokenizer, "chat_template", None)
        else ("plain User:/Assistant: layout (base model, no chat template)")
    )
    res["dev"] = f"the first {n_dev} texts of the training subsample (never test texts)"
    res["seconds"] = time.perf_counter() - t0
    write_json(path, {"key": key, "result": res})
    _log(f"  zero-shot: {len(data.test_texts)} + {n_dev} dev texts in {res['seconds']:.0f}s")
    return res


def _control_check(lms: dict[str, Any]) -> dict[str, Any]:
    """Evidence that the control is a random init: its input embeddings against the model's."""
    import torch

    a = lms["model"].model.get_input_embeddings().weight.detach().float()
    b = lms["control"].model.get_input_embeddings().weight.detach().float()
    corr = torch.corrcoef(torch.stack([a.flatten()[:1_000_000], b.flatten()[:1_000_000]]))
    return {
        "embedding_correlation_model_vs_control": float(corr[0, 1]),
        "embedding_std": {"model": float(a.std()), "control": float(b.std())},
        "identical_parameters": int(
            sum(
                torch.equal(p, q)
                for p, q in zip(
                    lms["model"].model.parameters(), lms["control"].model.parameters(), strict=True
                )
                if p.dim() > 1
            )
        ),
    }


def _chat(tokenizer: Any, texts: list[str]) -> list[str]:
    from emoscope.models import render_chat

    return [render_chat(tokenizer, [{"role": "user", "content": t}]) for t in texts]


def _activations(lm: Any, texts: list[str], folder: Path, args: argparse.Namespace) -> Any:
    """Cached last-token activations of all layers (extracted once, then memory-mapped).

    Extracted in parts of ``--chunk`` texts, each kept on disk as it completes, so a run cut
    in the middle of a split resumes at its last finished part; the parts are then joined.
    """
    import shutil

    import numpy as np

    from emoscope._io import write_json
    from emoscope.activations import Activations, extract_activations
    from emoscope.models import autocast

    if (folder / "meta.json").is_file():
        acts = Activations.load(folder)
        if acts.n == len(texts) and acts.meta.get("max_length") == args.max_length:
            return acts
    templated = bool(getattr(lm.tokenizer, "chat_template", None))
    rendered = _chat(lm.tokenizer, texts)
    t0 = time.perf_counter()
    parts = []
    for start in range(0, len(texts), args.chunk):
        part = folder / "parts" / f"{start:06d}"
        chunk = rendered[start : start + args.chunk]
        parts.append(part)
        if (part / "meta.json").is_file() and Activations.load(part).n == len(chunk):
            continue
        with autocast(args.bf16, "cpu"):
            extract_activations(
                lm, chunk, layers="all", pooling="last", batch_size=args.batch_size,
                max_length=args.max_length, out_dir=part, add_special_tokens=not templated,
            )  # fmt: skip
        _log(f"  {folder}: {start + len(chunk)}/{len(texts)} texts")
    loaded = [Activations.load(p) for p in parts]
    meta = dict(loaded[0].meta, n=len(texts), bf16_autocast=args.bf16)
    for lay in loaded[0].layers:
        out = np.lib.format.open_memmap(
            folder / f"layer_{lay:03d}.npy", mode="w+", dtype=np.float16,
            shape=(len(texts), loaded[0].hidden_size),
        )  # fmt: skip
        out[:] = np.concatenate([a[lay] for a in loaded])
        out.flush()
        del out
    write_json(folder / "meta.json", meta)
    shutil.rmtree(folder / "parts")
    _log(f"  {folder}: {len(texts)} texts in {time.perf_counter() - t0:.0f}s")
    return Activations.load(folder)


def _bf16_check(lm: Any, data: Any, probes: dict[int, Any], args: argparse.Namespace) -> Any:
    """bf16 autocast against float32 on the first test texts: the cosine of the two
    last-token states per layer and how often the trained linear probe's read-outs agree."""
    import numpy as np

    from emoscope.activations import extract_activations
    from emoscope.models import autocast

    texts = _chat(lm.tokenizer, data.test_texts[: args.bf16_check_n])
    templated = bool(getattr(lm.tokenizer, "chat_template", None))
    acts = {}
    for bf in (False, True):
        with autocast(bf, "cpu"):
            acts[bf] = extract_activations(
                lm, texts, layers="all", pooling="last", batch_size=args.batch_size,
                max_length=args.max_length, add_special_tokens=not templated,
            )  # fmt: skip
    rows = {}
    for lay, probe in probes.items():
        a, b = acts[False][lay], acts[True][lay]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        agree = float(np.mean(probe.predict(a) == probe.predict(b)))
        rows[str(lay)] = {"mean_cosine": float(cos.mean()), "probe_agreement": agree}
    return {
        "n": len(texts),
        "layers": rows,
        "min_probe_agreement": min(r["probe_agreement"] for r in rows.values()),
        "min_mean_cosine": min(r["mean_cosine"] for r in rows.values()),
    }


def _probe_dataset(
    name: str, lms: dict[str, Any], cache: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], Any, dict[int, Any]]:
    """Curves of both probe kinds for the model and its control on one dataset."""
    import numpy as np

    from emoscope.datasets import load_dataset
    from emoscope.probe import classification_scores, prepare_probe_data, probe_layers

    tr = load_dataset(name, "train", root=args.data_root, taxonomy=DATASETS[name])
    te = load_dataset(name, "test", root=args.data_root, taxonomy=DATASETS[name])
    data = prepare_probe_data(tr, te, max_train=args.max_train, max_test=args.max_test, seed=0)
    counts = np.bincount(data.train_y, minlength=len(data.labels))
    majority = int(counts.argmax())
    maj_acc, maj_f1 = classification_scores(data.test_y, np.full_like(data.test_y, majority))
    entry: dict[str, Any] = {
        "taxonomy": DATASETS[name],
        "labels": list(data.labels),
        "data": data.notes,
        "majority_baseline": {
            "label": data.labels[majority], "accuracy": maj_acc, "macro_f1": maj_f1,
        },
        "curves": {},
        "seconds": {},
    }  # fmt: skip
    linear_probes: dict[int, Any] = {}
    for variant, lm in lms.items():
        t1 = time.perf_counter()
        acts = {
            split: _activations(lm, texts, cache / variant / name / split, args)
            for split, texts in (("train", data.train_texts), ("test", data.test_texts))
        }
        entry["seconds"][f"{variant}_extract_or_load"] = time.perf_counter() - t1
        for kind in ("linear", "mlp"):
            t2 = time.perf_counter()
            curve, probes = probe_layers(
                acts["train"], data.train_y, acts["test"], data.test_y, kind=kind,
                n_classes=len(data.labels), n_boot=args.n_boot, seed=0,
                progress=functools.partial(_log_step, f"  {name} {variant} {kind}"),
            )  # fmt: skip
            curve.random_init = variant == "control"
            entry["curves"][f"{kind}/{variant}"] = curve.to_dict()
            entry["seconds"][f"{variant}_{kind}_probe"] = time.perf_counter() - t2
            if kind == "linear" and variant == "model":
                linear_probes = probes
    if args.bf16 and args.bf16_check_n:
        t1 = time.perf_counter()
        entry["bf16_check"] = _bf16_check(lms["model"], data, linear_probes, args)
        entry["seconds"]["bf16_check"] = time.perf_counter() - t1
    entry["zero_shot"] = _zero_shot(lms["model"].name, data, cache / "zero_shot" / name, args)
    entry["summary"] = {
        key: max(c["scores"], key=lambda s: s["accuracy"]) for key, c in entry["curves"].items()
    }
    return entry, data, linear_probes


def _persistence_layers(n_layers: int, best: int) -> list[int]:
    picks = {1, n_layers // 4, n_layers // 2, (3 * n_layers) // 4, n_layers, best}
    return sorted(x for x in picks if 0 < x <= n_layers)


def _stage(path: Path, key: Any, run: Any) -> Any:
    """``run()``'s result, kept as JSON at ``path`` and reused while ``key`` is unchanged."""
    from emoscope._io import write_json

    if path.is_file():
        old = json.loads(path.read_text("utf-8"))
        if old.get("key") == key:
            return old["result"]
    res = run()
    write_json(path, {"key": key, "result": res})
    return res


def _analyses(
    model: str, lm: Any, found: dict[str, Any], out: dict[str, Any], home: Path,
    args: argparse.Namespace, save: Any,
) -> None:  # fmt: skip
    """Persistence and malleability on GoEmotions (each a resumable section)."""
    import pickle

    from emoscope.models import autocast
    from emoscope.probe import malleability, persistence_curve, prepare_probe_data

    name = "goemotions"
    if "data" not in found:
        from emoscope.datasets import load_dataset

        tr, te = (
            load_dataset(name, s, root=args.data_root, taxonomy=DATASETS[name])
            for s in ("train", "test")
        )
        found["data"] = prepare_probe_data(
            tr, te, max_train=args.max_train, max_test=args.max_test, seed=0
        )
        with open(home / name / "linear_probes.pkl", "rb") as fh:
            found["probes"] = pickle.load(fh)  # our own cache file
    data, probes = found["data"], found["probes"]
    best = out["datasets"]["goemotions"]["curves"]["linear/model"]["best_layer"]["accuracy"]
    layers = _persistence_layers(lm.n_layers, int(best))
    n = min(args.persistence_n, len(data.test_texts))

    def persistence() -> dict[str, Any]:
        _log(f"{model}: persistence on {n} texts, layers {layers}, offsets {args.offsets}")
        t1 = time.perf_counter()
        with autocast(args.bf16, "cpu"):
            res = persistence_curve(
                lm, {k: probes[k] for k in layers}, data.test_texts[:n],
                data.test_y[:n].tolist(), offsets=args.offsets, chat_format=True,
                batch_size=4,
            )  # fmt: skip
        res["seconds"] = time.perf_counter() - t1
        return dict(res)

    out["persistence"] = _stage(home / "persistence.json", args.settings, persistence)
    save(out)
    m = min(args.malleability_n, len(data.test_texts))

    def malleable() -> dict[str, Any]:
        _log(f"{model}: malleability on {m} texts under {len(SYSTEM_PROMPTS)} system prompts")
        t1 = time.perf_counter()
        with autocast(args.bf16, "cpu"):
            res = malleability(
                lm, probes, data.labels, data.test_texts[:m], data.test_y[:m].tolist(),
                SYSTEM_PROMPTS, batch_size=args.batch_size, max_length=args.max_length + 64,
            )  # fmt: skip
        res["seconds"] = time.perf_counter() - t1
        return dict(res)

    out["malleability"] = _stage(home / "malleability.json", args.settings, malleable)
    save(out)


def _run_model(
    model: str, cache: Path, args: argparse.Namespace, save: Any, out: dict[str, Any]
) -> dict[str, Any]:
    """Every section of one model; each finished section is kept under ``cache`` (and
    ``save(out)`` called), so a cut run resumes at the first unfinished one."""
    import pickle

    from emoscope.activations import load_model

    t0 = time.perf_counter()
    lms = {
        "model": load_model(model, seed=0),
        "control": load_model(model, random_init=True, seed=0),
    }
    lm = lms["model"]
    out.update(
        {
            "model": model,
            "n_layers": lm.n_layers,
            "hidden_size": lm.hidden_size,
            "chat_template": bool(getattr(lm.tokenizer, "chat_template", None)),
            "control_check": _control_check(lms),
            "status": "partial",
        }
    )
    out.setdefault("datasets", {})
    key = args.settings
    home = cache / model
    for name in args.datasets:
        _log(f"{model}: {name}")
        found: dict[str, Any] = {}

        def run(name: str = name, found: dict[str, Any] = found) -> dict[str, Any]:
            entry, found["data"], found["probes"] = _probe_dataset(name, lms, home, args)
            if name == "goemotions":
                (home / name).mkdir(parents=True, exist_ok=True)
                with open(home / name / "linear_probes.pkl", "wb") as fh:
                    pickle.dump(found["probes"], fh)
            return entry

        out["datasets"][name] = _stage(home / name / "entry.json", key, run)
        save(out)
        if name != "goemotions":
            continue
        # Persistence and malleability read GoEmotions with its linear probes; they run
        # before the next dataset, so that a cut run has one dataset complete.
        _analyses(model, lm, found, out, home, args, save)
    out["status"] = "complete"
    out["seconds_this_run"] = time.perf_counter() - t0
    save(out)
    return out


def claims(models: dict[str, Any]) -> dict[str, Any]:
    """Whether each claim of "Decoding Emotion in the Deep" holds in the measured numbers."""
    peak: dict[str, Any] = {}
    beats: dict[str, Any] = {}
    persists: dict[str, Any] = {}
    for model, res in models.items():
        if "n_layers" not in res:
            continue
        n = res["n_layers"]
        for name, entry in res.get("datasets", {}).items():
            best = entry["summary"]["linear/model"]
            depth = best["layer"] / n
            last = entry["curves"]["linear/model"]["scores"][-1]
            peak[f"{model}/{name}"] = {
                "best_layer": best["layer"],
                "n_layers": n,
                "relative_depth": round(depth, 3),
                "best_accuracy": best["accuracy"],
                "last_layer_accuracy": last["accuracy"],
                "holds": 0.25 <= depth <= 0.75 and best["accuracy_ci"][0] > last["accuracy"],
            }
            zs = entry["zero_shot"]
            rows = {k: zs[k] for k in ZERO_SHOT_ROWS if k in zs}
            best_zs = max(rows, key=lambda k: rows[k]["accuracy"]) if rows else None
            beats[f"{model}/{name}"] = {
                "probe_layer": best["layer"],
                "probe_accuracy": best["accuracy"],
                "probe_accuracy_ci": best["accuracy_ci"],
                "probe_macro_f1": best.get("macro_f1"),
                "zero_shot_accuracy": {k: r["accuracy"] for k, r in rows.items()},
                "zero_shot_macro_f1": {k: r["macro_f1"] for k, r in rows.items()},
                "best_zero_shot_row": best_zs,
                "majority_accuracy": entry["majority_baseline"]["accuracy"],
                "holds": None
                if best_zs is None
                else bool(best["accuracy_ci"][0] > rows[best_zs]["accuracy_ci"][1]),
            }
        pers = res.get("persistence")
        if pers and "goemotions" in res["datasets"]:
            maj = res["datasets"]["goemotions"]["majority_baseline"]["accuracy"]
            rows = {}
            for lay, curve in pers["layers"].items():
                a0, ak = curve[0]["accuracy"], curve[-1]["accuracy"]
                kept = (ak - maj) / (a0 - maj) if a0 > maj else float("nan")
                rows[lay] = {
                    "accuracy_offset_0": a0,
                    f"accuracy_offset_{curve[-1]['offset']}": ak,
                    "share_of_gain_over_majority_kept": kept,
                }
            best_layer = str(res["datasets"]["goemotions"]["summary"]["linear/model"]["layer"])
            kept_best = rows.get(best_layer, {}).get("share_of_gain_over_majority_kept")
            persists[model] = {
                "majority_accuracy": maj,
                "layers": rows,
                "holds": kept_best is not None and kept_best >= 0.5,
            }
    return {
        "paper": "Decoding Emotion in the Deep (Zhang & Zhong, 2025, arXiv:2510.04064)",
        "signal_peaks_mid_network": {
            "rule": "best linear-probe layer (accuracy) within 25-75% of depth and its CI "
            "lower bound above the last layer's accuracy",
            "results": peak,
        },
        "probes_beat_zero_shot_prompting": {
            "rule": "the best linear probe's accuracy CI lies above the CI of the best "
            "zero-shot label-scoring row (raw, calibrated or calibrated with the label prior)",
            "results": beats,
        },
        "tone_persists_for_hundreds_of_tokens": {
            "rule": "at the largest filler offset the best layer keeps at least half of its "
            "accuracy gain over the majority class",
            "results": persists,
        },
    }


def _plots(models: dict[str, Any], layers_png: str, persistence_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoscope._io import atomic_open
    from emoscope.probe import plot_layer_curves

    panels, baselines = [], []
    for model, res in models.items():
        for name, entry in res.get("datasets", {}).items():
            curves = [
                (f"{kind} probe, {'trained' if v == 'model' else 'random-init control'}", c)
                for key, c in entry["curves"].items()
                for kind, v in [key.split("/")]
            ]
            title = f"{model} · {'GoEmotions→Ekman' if name == 'goemotions' else 'MELD'}"
            panels.append((title, curves))
            lines = {"majority class": entry["majority_baseline"]}
            if "calibrated" in entry.get("zero_shot", {}):
                lines["zero-shot label scoring, calibrated"] = entry["zero_shot"]["calibrated"]
            baselines.append(lines)
    plot_layer_curves(panels, layers_png, baselines=baselines)
    with_pers = {m: r for m, r in models.items() if r.get("persistence")}
    if not with_pers:
        return
    fig, axes = plt.subplots(1, len(with_pers), figsize=(5.2 * len(with_pers), 3.6), squeeze=False)
    for ax, (model, res) in zip(axes[0], with_pers.items(), strict=True):
        for lay, curve in res["persistence"]["layers"].items():
            xs = [max(r["offset"], 0.5) for r in curve]
            ax.plot(xs, [r["accuracy"] for r in curve], marker="o", label=f"layer {lay}")
        maj = res["datasets"]["goemotions"]["majority_baseline"]["accuracy"]
        ax.axhline(maj, ls=":", color="grey", label="majority class")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("neutral filler tokens after the text (0 plotted at 0.5)")
        ax.set_ylabel("linear-probe accuracy")
        ax.set_title(f"{model}: persistence (GoEmotions→Ekman)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(Path(persistence_png), "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--max-train", type=int, default=4000)
    ap.add_argument("--max-test", type=int, default=1000)
    ap.add_argument("--max-length", type=int, default=128, help="tokens, chat template included")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--offsets", default="0,1,2,4,8,16,32,64,128,256")
    ap.add_argument("--persistence-n", type=int, default=300)
    ap.add_argument("--malleability-n", type=int, default=500)
    ap.add_argument("--zero-shot-dev", type=int, default=500, help="calibration texts (train)")
    ap.add_argument("--zero-shot-batch", type=int, default=16)
    ap.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=True,
        help="bf16 autocast for the model's forward passes (probes train in float32)",
    )  # fmt: skip
    ap.add_argument("--bf16-check-n", type=int, default=200, help="texts of the fp32 check")
    ap.add_argument("--chunk", type=int, default=500, help="texts per resumable part")
    ap.add_argument("--data-root", default=None)
    ap.add_argument(
        "--machine-note", default="2 CPU cores; the load averages show what else ran",
        help="what else shared the machine (stored with the results)",
    )  # fmt: skip
    ap.add_argument("--cache", default=str(WORK / "probe_llm"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_llm.json"))
    ap.add_argument("--figure-dir", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        ap.error(f"unknown datasets {unknown}; expected some of {', '.join(DATASETS)}")
    try:
        args.offsets = sorted({int(x) for x in args.offsets.split(",")})
    except ValueError:
        ap.error(f"--offsets should be comma-separated integers, got {args.offsets!r}")

    import torch
    import transformers

    from emoscope import __version__
    from emoscope._io import write_json

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    settings = {
        "max_train": args.max_train,
        "max_test": args.max_test,
        "max_length_tokens": args.max_length,
        "datasets": args.datasets,
        "n_boot": args.n_boot,
        "offsets": args.offsets,
        "persistence_n": args.persistence_n,
        "malleability_n": args.malleability_n,
        "system_prompts": SYSTEM_PROMPTS,
        "input": "each text as a user chat turn plus the generation prompt (render_chat); "
        "last-token state of every hidden-state layer, float32 weights, float16 cache",
        "bf16_autocast": args.bf16,
        "precision": "forward passes (activations, persistence, malleability, zero-shot) under "
        "bf16 autocast (its speed-up depends on the CPU's bf16 instructions, AMX or AVX-512 "
        "BF16: see machine.isa), probes trained in "
        "float32; bf16_check compares with float32 on the first test texts"
        if args.bf16
        else "float32 forward passes",
        "linear_probe": "multinomial logistic regression, L2 penalty chosen from 1e-3..1 on "
        "15% of the training subsample, refitted on all of it (standardised features)",
        "mlp_probe": "1 hidden layer of 256 ReLU units, dropout 0.1, Adam, early stopping",
        "control": "same architecture and tokenizer, random weights (from_config, seed 0)",
        "subsample": "uniform random without replacement (seed 0), single-label examples only",
        "torch_threads": args.threads,
        "zero_shot": "label scoring of the label words after emoscope.probe.zero_shot_prompt; "
        f"calibration fitted on {args.zero_shot_dev} training texts",
    }
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text("utf-8")) if out_path.is_file() else {}
    done = previous.get("models", {}) if previous.get("settings") == settings else {}
    done = {m: r for m, r in done.items() if r.get("status") == "complete"}
    args.settings = settings
    results: dict[str, Any] = {
        "settings": settings,
        "environment": {
            "emoscope": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "models": dict(done),
    }

    def save(_entry: Any = None) -> None:
        results["machine"] = machine_info(load0, args.machine_note)
        results["claims"] = claims(results["models"])
        write_json(out_path, results)

    cache = Path(args.cache) / ("bf16" if args.bf16 else "fp32")
    for model in [m for m in args.models.split(",") if m]:
        if model in done:
            _log(f"{model}: already in {out_path}, skipped")
            continue
        results["models"][model] = {"status": "partial"}
        _run_model(model, cache, args, save, results["models"][model])
    save()
    fig = Path(args.figure_dir)
    _plots(
        results["models"], str(fig / "probe_llm_layers.png"), str(fig / "probe_llm_persistence.png")
    )
    _log(f"wrote {out_path} and the figures in {fig}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
