"""The whole probe run behind ``emoscope probe``: data, activations of the model and of its
randomly initialised control, layer curves and the majority and zero-shot baselines, in one
JSON-ready report (persistence and malleability are run on its probes by the caller)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.probe.curves import ProbeCurve, probe_layers
from emoscope.probe.data import ProbeData, prepare_probe_data
from emoscope.probe.probes import Probe
from emoscope.probe.zero_shot import zero_shot_baseline
from emoscope.stats import classification_scores

if TYPE_CHECKING:
    from emoscope.activations import LoadedModel

__all__ = [
    "ProbeRun",
    "run_probe",
]


@dataclass
class ProbeRun:
    """What :func:`run_probe` produces: the JSON-ready report and the fitted probes."""

    report: dict[str, Any]
    probes: dict[int, Probe]
    lm: LoadedModel
    data: ProbeData


def _prefixed(say: Callable[[str], None], prefix: str, message: str) -> None:
    say(f"{prefix} {message}")


def _curve_dict(curve: ProbeCurve) -> dict[str, Any]:
    return curve.to_dict()


def run_probe(
    model: str | None,
    dataset: str,
    *,
    taxonomy: str | None = None,
    layers: str | Sequence[int] | None = "all",
    kind: str = "linear",
    pooling: str = "auto",
    control: bool = True,
    max_train: int | None = 8000,
    max_test: int | None = 2000,
    train_split: str = "train",
    test_split: str = "test",
    seed: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
    class_weight: str | None = None,
    chat_format: bool = False,
    data_root: str | Path | None = None,
    device: str = "cpu",
    activations_dir: str | Path | None = None,
    n_boot: int = 1000,
    zero_shot_backend: Any = None,
    zero_shot_limit: int | None = 500,
    bf16: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ProbeRun:
    """Probe every chosen layer of ``model`` on ``dataset`` (and of its random-init control).

    Args:
        model: path or Hub id (``None``/``"minilm"``: all-MiniLM-L6-v2).
        dataset: an :func:`emoscope.datasets.load_dataset` name (``goemotions``, ``meld`` ...).
        taxonomy: map the gold labels into this taxonomy first (e.g. ``ekman``).
        layers: see :func:`emoscope.activations.parse_layers`.
        kind: ``linear`` or ``mlp``.
        pooling: see :func:`emoscope.activations.extract_activations`.
        control: also probe a randomly initialised copy of the model.
        max_train, max_test: random subsample sizes (``None``: everything).
        chat_format: wrap each text as a user chat turn (for instruction-tuned decoders).
        activations_dir: stream activations to this folder (float16 ``.npy``) instead of RAM.
        zero_shot_backend: a chat backend (see :mod:`emoscope.stimuli`) for the zero-shot
            prompting baseline on the first ``zero_shot_limit`` test texts.
        bf16: read the activations under CPU bfloat16 autocast (faster on CPUs with native
            bf16, AMX or AVX-512 BF16; float32 weights, the probes are fitted in float32).
        progress: called with short status lines.
    """
    from emoscope.activations import extract_activations, load_model, parse_layers, render_chat
    from emoscope.datasets import load_dataset
    from emoscope.models import autocast

    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    tr = load_dataset(dataset, train_split, root=data_root, taxonomy=taxonomy)
    te = load_dataset(dataset, test_split, root=data_root, taxonomy=taxonomy)
    data = prepare_probe_data(tr, te, max_train=max_train, max_test=max_test, seed=seed)
    say(f"{dataset}: {len(data.train_texts)} train / {len(data.test_texts)} test texts")
    report: dict[str, Any] = {
        "dataset": dataset,
        "taxonomy": tr.taxonomy.name if tr.taxonomy is not None else None,
        "labels": list(data.labels),
        "data": data.notes,
        "probe": kind,
        "class_weight": class_weight,
        "chat_format": chat_format,
        "max_length": max_length,
        "bootstrap": {"n_boot": n_boot, "level": 0.95, "method": "percentile"},
        "bf16_autocast": bf16,
    }
    counts = np.bincount(data.train_y, minlength=len(data.labels))
    majority = int(counts.argmax())
    maj_acc, maj_f1 = classification_scores(data.test_y, np.full_like(data.test_y, majority))
    report["majority_baseline"] = {
        "label": data.labels[majority], "accuracy": maj_acc, "macro_f1": maj_f1,
    }  # fmt: skip

    curves: dict[str, Any] = {}
    fitted: dict[int, Probe] = {}
    main_lm: LoadedModel | None = None
    timings: dict[str, Any] = {}
    for variant in ("model", "control") if control else ("model",):
        t1 = time.perf_counter()
        lm = load_model(model, random_init=variant == "control", seed=seed, device=device)
        chosen = parse_layers(layers, lm.n_layers)

        def fmt(texts: list[str], lm: LoadedModel = lm) -> list[str]:
            if not chat_format:
                return texts
            return [render_chat(lm.tokenizer, [{"role": "user", "content": t}]) for t in texts]

        special = not (chat_format and getattr(lm.tokenizer, "chat_template", None))
        acts = {}
        for split, texts in (("train", data.train_texts), ("test", data.test_texts)):
            say(f"{variant}: reading {len(texts)} {split} texts")
            out_dir = None
            if activations_dir is not None:
                out_dir = Path(activations_dir) / variant / split
            with autocast(bf16, device):
                acts[split] = extract_activations(
                    lm, fmt(texts), layers=chosen, pooling=pooling, batch_size=batch_size,
                    max_length=max_length, out_dir=out_dir, add_special_tokens=special,
                )  # fmt: skip
        t2 = time.perf_counter()
        curve, probes = probe_layers(
            acts["train"], data.train_y, acts["test"], data.test_y, kind=kind,
            n_classes=len(data.labels), class_weight=class_weight, n_boot=n_boot, seed=seed,
            progress=functools.partial(_prefixed, say, variant),
        )  # fmt: skip
        curve.random_init = variant == "control"
        curves[variant] = _curve_dict(curve)
        timings[variant] = {"extract": t2 - t1, "probe": time.perf_counter() - t2}
        if variant == "model":
            fitted, main_lm = probes, lm
            report["model"] = lm.name
            report["model_kind"] = lm.kind
            report["n_layers"] = lm.n_layers
            report["hidden_size"] = lm.hidden_size
            report["pooling"] = acts["train"].pooling
            report["layers"] = chosen
    report["curves"] = curves
    if zero_shot_backend is not None:
        n_zs = len(data.test_texts) if zero_shot_limit is None else zero_shot_limit
        say(f"zero-shot baseline on {min(n_zs, len(data.test_texts))} test texts")
        report["zero_shot"] = zero_shot_baseline(
            zero_shot_backend, data.test_texts[:n_zs], data.test_y[:n_zs].tolist(), data.labels,
            n_boot=n_boot, seed=seed,
        )  # fmt: skip
    report["seconds"] = {**timings, "total": time.perf_counter() - t0}
    assert main_lm is not None
    return ProbeRun(report, fitted, main_lm, data)
