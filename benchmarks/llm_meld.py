"""PRC-Emo on MELD with a real small LLM (SmolLM2-135M-Instruct, offline): the rows of issue 11.

Rows (all in label-scoring mode: each label's log-likelihood as the answer, a distribution with
no parse failures, calibrated by a contextual-calibration prior and then a temperature, both
fitted on a fixed MELD dev subset):

* ``zero-shot``: instruction + 5-turn context, no demonstrations, all of MELD test;
* ``retrieval``: + the top-3 demonstrations of the MiniLM store of MELD train, all of MELD test;
* ``cues``: the full PRC prompt (stage-1 descriptions and speaker profile written by the same
  model, + retrieval) on a fixed subset of whole test dialogues (``--cue-test``, >= 300
  utterances); the summary scores the zero-shot and retrieval rows on the same subset beside it
  and reports the validity rate of the stage-1 JSON;
* ``lora``, ``lora-r``, ``lora-r-c``: a LoRA adapter (r = 32, all linear layers)
  trained on a fixed subset of whole MELD train dialogues (``--train-n``, >= 2,000
  utterances) with the plain prompt, with retrieval in the training and test prompts, and with
  PRC-Emo's speaker-weighted 2-bucket curriculum; all of MELD test. Held-out answer loss on the
  dev subset after every epoch; a checkpoint after every epoch and every 25 optimiser steps.

Everything is checkpointed under ``$EMOSCOPE_BENCH_WORK/llm_meld/<model>/``: each row phase
(``dev``, ``test``) appends one JSON line per utterance (raw label log-likelihoods, prompt
tokens, seconds) a few dialogues at a time, so a cut run resumes at the next dialogue; LoRA
training resumes at its last checkpoint (inside an epoch too). ``--summarise`` writes
``benchmarks/results/llm_meld.json`` from whatever is done; unfinished rows are marked as such
with their n.

Resume command (the same as the first launch; it skips what is done)::

    cd /work/main && EMOSCOPE_BENCH_WORK=$PWD/bench_work OMP_NUM_THREADS=2 \\
      PYTHONPATH=$PWD/src setsid nohup /work/main/.venv/bin/python \\
      benchmarks/llm_meld.py --threads 2 > bench_work/llm_meld.log 2>&1 &
      echo $! > bench_work/llm_meld.pid
    # lower its priority: setsid puts it in its own autogroup, where `nice` has no effect
    # against other sessions' jobs, so set the autogroup's nice value instead
    echo 19 > /proc/$(cat bench_work/llm_meld.pid)/autogroup
    # then, at any time:
    EMOSCOPE_BENCH_WORK=$PWD/bench_work PYTHONPATH=$PWD/src \\
      /work/main/.venv/bin/python benchmarks/llm_meld.py --summarise
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    WORK,
    bf16_note,
    cpu_info,
    machine_info,
    restore_checkpoint,
    save_checkpoint,
)
from emoscope._io import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "llm_meld.json"
LABELS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
ORDER = ("zero-shot", "retrieval", "cues", "lora", "lora-r", "lora-r-c")
#: Per row: prompt variant, demonstrations, curriculum (LoRA rows), evaluation set.
ROWS: dict[str, dict[str, Any]] = {
    "zero-shot": {"prompt": "zero-shot", "retrieve": 0, "test": "all"},
    "retrieval": {"prompt": "few-shot", "retrieve": 3, "test": "all"},
    "cues": {"prompt": "prc", "retrieve": 3, "test": "cue-subset"},
    "lora": {"prompt": "zero-shot", "retrieve": 0, "test": "all", "curriculum": "none"},
    "lora-r": {"prompt": "few-shot", "retrieve": 3, "test": "all", "curriculum": "none"},
    "lora-r-c": {
        "prompt": "few-shot",
        "retrieve": 3,
        "test": "all",
        "curriculum": "speaker-weighted",
    },
}
REFERENCES = {
    "emoscope encoder (MiniLM fine-tuned, shipped default)": {"weighted_f1": 0.628},
    "PRC-Emo, Qwen3-8B (Li et al., AAAI 2026, Table 3)": {"weighted_f1": 0.7044},
    "plain LoRA, Qwen3-8B (Li et al., AAAI 2026, Table 3)": {"weighted_f1": 0.6872},
}


# --------------------------------------------------------------------------------------------
# Pure parts: subsets, checkpoints, summaries


def select_dialogues(data: Any, min_utterances: int, seed: int = 0) -> Any:
    """A fixed subset of whole dialogues of ``data`` with at least ``min_utterances`` utterances:
    dialogues in a seeded random order until the count is reached, kept in file order."""
    dialogues = list(data.dialogues or [])
    order = list(range(len(dialogues)))
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    count = 0
    for i in order:
        if count >= min_utterances:
            break
        chosen.add(i)
        count += len(dialogues[i])
    keep = [d for i, d in enumerate(dialogues) if i in chosen]
    ids = {d.id for d in keep}
    examples = [e for e in data.examples if e.dialogue is not None and e.dialogue.id in ids]
    return replace(data, dialogues=keep, examples=examples)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL checkpoint; a cut last line (no newline, bad JSON) is dropped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text("utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_records(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append records as JSON lines in one write, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    with path.open("a", encoding="utf-8") as f:
        # A previous cut write may have left a partial line: start on a fresh one.
        if f.tell() and not path.read_bytes().endswith(b"\n"):
            f.write("\n")
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def todo_chunks(data: Any, done_ids: set[str], min_chunk: int = 16) -> Iterator[list[Any]]:
    """Groups of whole dialogues not yet fully in ``done_ids``, each >= ``min_chunk`` utterances
    (the last may be smaller)."""
    chunk: list[Any] = []
    n = 0
    for d in data.dialogues or []:
        ids = [e.id for e in data.examples if e.dialogue is d]
        if all(i in done_ids for i in ids):
            continue
        chunk.append(d)
        n += len(d)
        if n >= min_chunk:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk


def scores_of(records: Sequence[dict[str, Any]]) -> np.ndarray:
    """The (n, labels) raw label log-likelihoods of records."""
    return np.array([[r["scores"][lab] for lab in LABELS] for r in records], dtype=np.float64)


def row_metrics(
    test: Sequence[dict[str, Any]], dev: Sequence[dict[str, Any]], n_planned: int
) -> dict[str, Any]:
    """Weighted-F1, accuracy, macro-F1, ECE, predicted-label distribution, prompt tokens and
    seconds per utterance of scored ``test`` records, calibrated on ``dev`` records (prior,
    then temperature) when there are any; raw-score metrics beside them."""
    from emoscope.llm.scoring import LabelCalibration
    from emoscope.metrics import classification_report, expected_calibration_error

    out: dict[str, Any] = {
        "n": len(test),
        "n_planned": n_planned,
        "status": "finished" if len(test) >= n_planned else "unfinished",
        "n_dev_calibration": len(dev),
    }
    if not test:
        return out
    gold = [r["gold"] for r in test]
    s = scores_of(test)
    variants: dict[str, LabelCalibration] = {"raw": LabelCalibration(LABELS)}
    if dev:
        variants["prior"] = LabelCalibration.fit(LABELS, scores_of(dev))
        variants["calibrated"] = LabelCalibration.fit(
            LABELS, scores_of(dev), [r["gold"] for r in dev]
        )
        # the dev label frequencies added back (contextual calibration assumes uniform labels)
        variants["label-prior"] = LabelCalibration.fit(
            LABELS, scores_of(dev), [r["gold"] for r in dev], label_prior=True
        )
    for name, cal in variants.items():
        p = cal.probabilities(s)
        pred = [LABELS[i] for i in p.argmax(1)]
        rep = classification_report(gold, pred, list(LABELS))
        conf = p.max(1)
        correct = np.array([a == b for a, b in zip(pred, gold, strict=True)], dtype=float)
        out[name] = {
            "weighted_f1": rep["weighted_f1"],
            "accuracy": rep["accuracy"],
            "macro_f1": rep["macro_f1"],
            "ece": expected_calibration_error(conf, correct),
            "predicted": dict(Counter(pred).most_common()),
        }
        if name in ("calibrated", "label-prior"):
            out[name]["prior"] = cal.prior
            out[name]["temperature"] = cal.temperature
        if name == "label-prior":
            out[name]["log_label_prior"] = cal.log_label_prior
    top = Counter(gold).most_common(1)[0][0]
    majority = classification_report(gold, [top] * len(gold), list(LABELS))
    out["majority"] = {"label": top, **{k: majority[k] for k in ("weighted_f1", "accuracy")}}
    out["main"] = "calibrated" if dev else "raw"
    out["gold"] = dict(Counter(gold).most_common())
    out["prompt_tokens_per_utterance"] = float(np.mean([r["prompt_tokens"] for r in test]))
    out["seconds_per_utterance"] = float(np.mean([r["seconds"] for r in test]))
    out["stage1_seconds_per_utterance"] = float(np.mean([r.get("stage1_s", 0.0) for r in test]))
    if any("stage1_failed" in r for r in test):
        fails = [set(r.get("stage1_failed", [])) for r in test]
        out["stage1_descriptions_valid_rate"] = float(
            np.mean(["descriptions" not in f for f in fails])
        )
        out["stage1_profile_valid_rate"] = float(np.mean(["profile" not in f for f in fails]))
    return out


def summarise(
    work: Path, setup: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The results JSON from the checkpoints in ``work`` (unfinished rows marked, with n).

    A row of ``previous`` (the results file as committed) is kept where ``work`` holds fewer
    of its test records than it counted: the machine an earlier run used may be gone, and its
    rows must not be replaced by an empty or shorter run. Each row names its machine."""
    previous = previous or {}
    prev_rows = previous.get("rows", {})
    rows: dict[str, Any] = {}
    planned = setup["planned"]

    def keep(name: str, n_local: int) -> bool:
        old = prev_rows.get(name)
        if not old or old.get("n", 0) == 0 or n_local >= old["n"]:
            return False
        rows[name] = {
            **old,
            "machine": old.get("machine", previous.get("machine")),
            "summarised_at": old.get("summarised_at", previous.get("summarised_at")),
        }
        return True

    for name in ORDER:
        test = read_records(work / f"{name}.test.jsonl")
        if keep(name, len(test)):
            continue
        dev = read_records(work / f"{name}.dev.jsonl")
        n_test = planned["cue-subset" if ROWS[name]["test"] == "cue-subset" else "test"]
        dev_planned = planned["cue-dev" if name == "cues" else "dev"]
        entry = {**ROWS[name], **row_metrics(test, dev if len(dev) >= dev_planned else [], n_test)}
        if 0 < len(dev) < dev_planned:
            entry["note"] = f"dev calibration subset unfinished ({len(dev)}/{dev_planned}): raw"
        train = work / name / "train.json"
        if train.is_file():
            entry["training"] = json.loads(train.read_text("utf-8"))
        elif (work / name / "ckpt" / "trainer_state.pt").is_file():
            entry["training"] = {"status": "unfinished (epoch checkpoint saved)"}
        machine = work / f"{name}.machine.json"
        if machine.is_file():
            entry["machine"] = json.loads(machine.read_text("utf-8"))
        rows[name] = entry
    # zero-shot and retrieval on the cue subset, beside the cues row.
    cue_ids = set(setup["cue_test_ids"])
    for name in ("zero-shot", "retrieval"):
        test = [r for r in read_records(work / f"{name}.test.jsonl") if r["id"] in cue_ids]
        if keep(f"{name} @ cue subset", len(test)):
            continue
        dev = read_records(work / f"{name}.dev.jsonl")
        rows[f"{name} @ cue subset"] = {
            **ROWS[name],
            "test": "cue-subset",
            **row_metrics(test, dev if len(dev) >= planned["dev"] else [], len(cue_ids)),
        }
    return {
        "setup": {k: v for k, v in setup.items() if not k.endswith("_ids")},
        "precision": _precision_runs(work, previous.get("precision")),
        "rows": rows,
        "references": REFERENCES,
        "machine": machine_info(os.getloadavg(), "where --summarise ran; each row names its own"),
        "summarised_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _precision_key(run: dict[str, Any]) -> tuple[str, bool]:
    # Two machines may report the same model name ("AMD EPYC") with and without native bf16.
    return str(run.get("cpu_model", "")), bool(run.get("bf16_native", False))


def precision_file(work: Path) -> Path:
    """This machine's fp32-vs-bf16 check in ``work``: one file per CPU model and bf16 support."""
    model = cpu_info().get("cpu_model", "") or "unknown-cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    from emoscope.recognizers.precision import bf16_native

    return work / f"precision-{slug}-{'bf16' if bf16_native() else 'nobf16'}.json"


def _precision_runs(work: Path, previous: Any) -> list[dict[str, Any]]:
    """The fp32-vs-bf16 checks, one per CPU (model name and native bf16): the committed ones
    (an older file held one check as a dict, from a machine whose model it did not record)
    and the work folder's, each replacing a committed check of the same CPU."""
    runs = [previous] if isinstance(previous, dict) else list(previous or [])
    runs = [{"cpu_model": "not recorded (an earlier session's Intel Xeon with AMX)", **r}
            for r in runs]  # fmt: skip
    for local in sorted(work.glob("precision*.json")):
        new = json.loads(local.read_text("utf-8"))
        runs = [r for r in runs if _precision_key(r) != _precision_key(new)] + [new]
    return runs


def markdown_table(results: dict[str, Any]) -> str:
    """The results as the Markdown table of docs/llm.md and the README (unfinished rows say
    so, with their n)."""

    def f(x: Any, digits: int = 3) -> str:
        return "" if x is None else f"{x:.{digits}f}"

    lines = [
        "| row | n | status | weighted-F1 | accuracy | macro-F1 | ECE | raw weighted-F1 | "
        "+ label prior weighted-F1 | majority weighted-F1 | prompt tokens | s/utt | "
        "predicted (top 2) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["rows"].items():
        main = row.get(row.get("main", "raw"), {})
        top = ", ".join(f"{k} {v}" for k, v in list(main.get("predicted", {}).items())[:2])
        lines.append(
            f"| {name} | {row['n']}/{row['n_planned']} | {row['status']}"
            f"{'' if row.get('main') != 'raw' or not row['n'] else ' (uncalibrated)'} | "
            f"{f(main.get('weighted_f1'))} | {f(main.get('accuracy'))} | "
            f"{f(main.get('macro_f1'))} | {f(main.get('ece'))} | "
            f"{f(row.get('raw', {}).get('weighted_f1'))} | "
            f"{f(row.get('label-prior', {}).get('weighted_f1'))} | "
            f"{f(row.get('majority', {}).get('weighted_f1'))} | "
            f"{f(row.get('prompt_tokens_per_utterance'), 0)} | "
            f"{f(row.get('seconds_per_utterance'), 2)} | {top} |"
        )
    for name, ref in results["references"].items():
        lines.append(f"| {name} | | reference | {ref['weighted_f1']:.3f} | | | | | | | | | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Running


class PeakRSS:
    """Samples this process's resident set size (VmRSS) every second; ``peak_mb``."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
            except OSError:
                return
            self._stop.wait(1.0)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_phase(
    rec: Any,
    data: Any,
    path: Path,
    log: Callable[[str], None],
    min_chunk: int = 16,
    keep: str | None = None,
) -> None:
    """Score every utterance of ``data`` not yet in ``path``, a few dialogues at a time; with
    ``keep``, a committed copy of the checkpoint (``results/raw/<keep>.gz``) is refreshed at
    most every 5 minutes and at the end."""
    saved = time.monotonic()
    done = {r["id"] for r in read_records(path)}
    total = len(data)
    for chunk in todo_chunks(data, done, min_chunk):
        stage1 = rec.timing["stage1_seconds"]
        t0 = time.perf_counter()
        preds = rec.predict(chunk)
        seconds = time.perf_counter() - t0
        stage1 = rec.timing["stage1_seconds"] - stage1
        ids = {d.id for d in chunk}
        examples = [e for e in data.examples if e.dialogue is not None and e.dialogue.id in ids]
        if len(preds) != len(examples):
            raise RuntimeError(f"{len(preds)} predictions for {len(examples)} utterances")
        records = []
        for e, p in zip(examples, preds, strict=True):
            r = {
                "id": e.id,
                "gold": e.labels[0],
                "scores": p.cues["label_logprobs"],
                "prompt_tokens": p.cues["prompt_tokens"],
                "seconds": seconds / len(preds),
                "stage1_s": stage1 / len(preds),
            }
            if "stage1_failed" in p.cues:
                r["stage1_failed"] = p.cues["stage1_failed"]
                r["stage1_prompt_tokens"] = p.cues.get("stage1_prompt_tokens", 0)
            records.append(r)
        append_records(path, records)
        done |= {r["id"] for r in records}
        log(f"{path.name}: {len(done)}/{total} ({seconds / len(preds):.2f} s/utt)")
        if keep and time.monotonic() - saved > 300:
            save_checkpoint(path, keep)
            saved = time.monotonic()
    if keep:
        save_checkpoint(path, keep)


def _recognizer(
    model: str, row: dict[str, Any], work: Path, bf16: bool, data_root: str | None = None
) -> Any:
    from emoscope.recognizers.llm import LLMRecognizer

    return LLMRecognizer(
        backend="hf",
        model=model,
        prompt=row["prompt"],
        retrieve=row["retrieve"],
        taxonomy="meld",
        cache_dir=work / "cache",
        batch_size=8,
        mode="score",
        device="cpu",
        bf16_autocast=bf16,
        cue_max_new_tokens=160,
        repetition_penalty=1.15,
        data_root=data_root,
    )


def train_row(
    name: str,
    args: argparse.Namespace,
    work: Path,
    train: Any,
    dev: Any,
    log: Any,
    bf16: bool,
) -> Path:
    """Train (or resume) the LoRA adapter of a row; its folder."""
    from emoscope.labels import get_taxonomy
    from emoscope.llm.sft import SFTConfig, build_examples, train_lora
    from emoscope.recognizers.llm import load_store

    row = ROWS[name]
    folder = work / name
    adapter = folder / "adapter"
    if (folder / "train.json").is_file():
        return adapter
    config = SFTConfig(
        base_model=args.model,
        dataset="meld",
        prompt=row["prompt"],
        retrieve=row["retrieve"],
        curriculum=row["curriculum"],
        n_buckets=2,
        epochs=args.epochs,
        batch_size=4,
        grad_accum=2,
        max_seq_len=1024,
        device="cpu",
        bf16_autocast=bf16,
        seed=args.seed,
    )
    store = (
        load_store(None, get_taxonomy("meld"), cache_dir=work / "cache", data_root=args.data_root)
        if row["retrieve"]
        else None
    )
    train_ex = build_examples(config, data=train, store=store, progress=log)
    held = build_examples(
        replace(config, curriculum="none"), data=dev.limit(args.held_out_n), store=store
    )
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        result = train_lora(
            train_ex,
            config,
            adapter,
            progress=log,
            prompt_settings={
                "variant": row["prompt"],
                "template": "meld",
                "taxonomy": "meld",
                "retrieve": row["retrieve"],
                "window": 5,
                "future": 0,
                "cue_window": 5,
            },
            held_out=held,
            checkpoint_dir=folder / "ckpt",
            checkpoint_steps=25,
        )
    items = sum(e["items"] for e in result["epochs"])
    train_s = sum(e["seconds"] for e in result["epochs"])
    write_json(
        folder / "train.json",
        {
            **result,
            "train_examples": len(train_ex),
            "held_out_examples": len(held),
            "wall_seconds_this_run": time.perf_counter() - t0,
            "train_examples_per_second": items / train_s if train_s else None,
            "peak_rss_mb_this_run": round(rss.peak_mb, 1),
            "epochs_setting": args.epochs,
            "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "targets": "all-linear"},
            "batch_size": config.batch_size,
            "length_group": config.length_group,
            "lr": config.lr,
            "bf16_autocast": config.bf16_autocast,
        },
    )
    return adapter


def plain_lora_config(model: str, **settings: Any) -> Any:
    """The LoRA settings of the ``lora`` row (plain prompt, no retrieval, no curriculum,
    micro-batches of 4 x 2 accumulation, on the CPU), with ``settings`` replaced."""
    from emoscope.llm.sft import SFTConfig

    base = {"batch_size": 4, "grad_accum": 2, "max_seq_len": 1024, "device": "cpu"}
    return SFTConfig(
        base_model=model, prompt="zero-shot", retrieve=0, curriculum="none", **(base | settings)
    )


def _row_machine(load0: Sequence[float], note: str, bf16: bool) -> dict[str, Any]:
    return {**machine_info(load0, note), "bf16_autocast": bf16}


def label_score_matrix(preds: Sequence[Any]) -> np.ndarray:
    """The label log-likelihoods of scored predictions, one row per utterance, LABELS order."""
    return np.array([[p.cues["label_logprobs"][lab] for lab in LABELS] for p in preds])


def score_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far two runs' label scores (:func:`label_score_matrix`) are apart: mean and largest
    |difference|, and the share of utterances whose best label is the same."""
    diff = np.abs(a - b)
    return {
        "max_abs_logprob_diff": float(diff.max()),
        "mean_abs_logprob_diff": float(diff.mean()),
        "argmax_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
    }


def precision_check(args: argparse.Namespace, work: Path, test: Any, train: Any, log: Any) -> None:
    """fp32 vs bf16 autocast on a small sample: label scores (agreement, s/utt) and LoRA step
    time (items/s); written once per CPU (:func:`precision_file`)."""
    out = precision_file(work)
    if out.is_file():
        return
    from emoscope.llm.sft import build_examples, train_lora
    from emoscope.recognizers.precision import bf16_native

    # Emulated bf16 (no native instructions) is tens of times slower: a smaller sample there.
    native = bf16_native()
    sample = test.limit(args.precision_n if native else max(1, args.precision_n // 4))
    n_lora = 16 if native else 4
    res: dict[str, Any] = {"n_utterances": len(sample), "bf16_native": native}
    scores = {}
    for bf16 in (False, True):
        rec = _recognizer(args.model, ROWS["zero-shot"], work, bf16, args.data_root)
        rec.predict(sample.inputs()[:1])  # warm-up
        t0 = time.perf_counter()
        preds = rec.predict(sample.inputs())
        tag = "bf16" if bf16 else "fp32"
        res[f"{tag}_seconds_per_utterance"] = (time.perf_counter() - t0) / len(preds)
        scores[tag] = label_score_matrix(preds)
        log(f"precision: {tag} {res[f'{tag}_seconds_per_utterance']:.2f} s/utt")
        del rec
    res.update(score_agreement(scores["fp32"], scores["bf16"]))
    ex = build_examples(
        plain_lora_config(args.model),
        data=train.limit(n_lora),
    )[:n_lora]
    res["n_lora_examples"] = len(ex)
    for bf16 in (False, True):
        cfg = plain_lora_config(args.model, epochs=1, bf16_autocast=bf16)
        log_ = train_lora(ex, cfg, work / "precision_adapter")
        tag = "bf16" if bf16 else "fp32"
        res[f"lora_{tag}_examples_per_second"] = log_["epochs"][0]["examples_per_second"]
        res[f"lora_{tag}_loss"] = log_["epochs"][0]["mean_loss"]
        log(f"precision: LoRA {tag} {res[f'lora_{tag}_examples_per_second']:.3f} examples/s")
    res["threads"] = args.threads
    res["load_average"] = [round(x, 2) for x in os.getloadavg()]
    res["note"] = bf16_note()
    info = cpu_info()
    res["cpu_model"] = info.get("cpu_model", "")
    res["isa"] = info.get("isa", {})
    write_json(out, res)
    log(f"precision: {json.dumps(res)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", default=",".join(ORDER))
    ap.add_argument("--test-limit", type=int, default=None, help="default: all 2,610")
    ap.add_argument("--cue-test", type=int, default=300)
    ap.add_argument("--dev-n", type=int, default=300, help="dev calibration subset (utterances)")
    ap.add_argument("--cue-dev-n", type=int, default=100)
    ap.add_argument("--train-n", type=int, default=2000)
    ap.add_argument("--held-out-n", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--precision-n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="bf16 autocast or float32; auto: bf16 where the CPU has native bf16 matrix "
        "arithmetic (it is emulated, and tens of times slower, elsewhere)",
    )
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--summarise", action="store_true")
    ap.add_argument(
        "--machine-note",
        default="2 CPU cores; the load averages show what else ran",
        help="what else ran on the machine, recorded with each row",
    )
    args = ap.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        ap.error(f"unknown rows {bad}; expected some of {list(ORDER)}")

    from emoscope.datasets import load_dataset

    work = WORK / "llm_meld" / args.model.replace("/", "_")
    work.mkdir(parents=True, exist_ok=True)
    test = load_dataset("meld", "test", root=args.data_root).limit(args.test_limit)
    dev_all = load_dataset("meld", "dev", root=args.data_root)
    train = select_dialogues(load_dataset("meld", "train", root=args.data_root), args.train_n, 0)
    dev = select_dialogues(dev_all, args.dev_n, 0)
    cue_dev = select_dialogues(dev_all, args.cue_dev_n, 1)
    cue_test = select_dialogues(test, args.cue_test, 0)
    setup = {
        "model": args.model,
        "dataset": "MELD (text), test split",
        "mode": "score (label log-likelihoods); calibration: prior then temperature, fitted on dev",
        "planned": {
            "test": len(test),
            "cue-subset": len(cue_test),
            "dev": len(dev),
            "cue-dev": len(cue_dev),
            "train": len(train),
        },
        "subsets": {
            "cue_test_dialogues": sorted({d.id for d in cue_test.dialogues}),
            "dev_dialogues": sorted({d.id for d in dev.dialogues}),
            "cue_dev_dialogues": sorted({d.id for d in cue_dev.dialogues}),
            "train_dialogues": sorted({d.id for d in train.dialogues}),
            "selection": "seeded shuffle of whole dialogues (seed 0; cue dev seed 1) until the "
            "utterance count is reached",
        },
        "retrieval_store": "MiniLM store of MELD train (9,989 utterances)",
        "lora": {
            "epochs": args.epochs,
            "batch_size": "4 x 2 accumulation",
            "r": 32,
            "alpha": 128,
            "lr": 3e-4,
            "max_seq_len": 1024,
        },
        "threads": args.threads,
        "seed": args.seed,
        "cue_max_new_tokens": 160,
        "repetition_penalty": 1.15,
        "cue_test_ids": [e.id for e in cue_test.examples],
    }
    saved = work / "setup.json"
    if saved.is_file() and not args.summarise:
        old = json.loads(saved.read_text("utf-8"))
        # The thread count changes speed, not results: a run may resume with another.
        if {k: v for k, v in old.items() if k != "threads"} != {
            k: v for k, v in setup.items() if k != "threads"
        }:
            print(
                f"{saved} was written by a run with other settings; use another "
                "EMOSCOPE_BENCH_WORK or delete it",
                file=sys.stderr,
            )
            return 2
    if args.summarise:
        if saved.is_file():
            setup = json.loads(saved.read_text("utf-8"))
        previous = json.loads(RESULTS.read_text("utf-8")) if RESULTS.is_file() else None
        results = summarise(work, setup, previous)
        write_json(RESULTS, results)
        print(markdown_table(results))
        print(f"wrote {RESULTS}")
        return 0
    write_json(saved, setup)

    import torch

    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    from emoscope.recognizers.precision import bf16_native

    bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_native())
    log(f"bf16 autocast: {bf16} ({bf16_note()})")
    tag = f"llm_meld/{work.name}"
    phases = {
        name: {
            "dev": (cue_dev if name == "cues" else dev),
            "test": (cue_test if ROWS[name]["test"] == "cue-subset" else test),
        }
        for name in rows
    }
    for name in rows:
        for phase in ("dev", "test"):
            restore_checkpoint(work / f"{name}.{phase}.jsonl", f"{tag}/{name}.{phase}.jsonl")
        for extra in (f"{name}.machine.json", f"{name}/train.json"):
            restore_checkpoint(work / extra, f"{tag}/{extra}")
    precision = precision_file(work)
    restore_checkpoint(work / "precision.json", f"{tag}/precision.json")  # an AVX2-only EPYC's
    restore_checkpoint(precision, f"{tag}/{precision.name}")
    precision_check(args, work, test, train, log)
    save_checkpoint(precision, f"{tag}/{precision.name}")
    for name in rows:
        row = ROWS[name]
        done = {
            p: {r["id"] for r in read_records(work / f"{name}.{p}.jsonl")} for p in phases[name]
        }
        if all({e.id for e in phases[name][p].examples} <= done[p] for p in phases[name]):
            log(f"row {name}: done")
            continue
        if (work / name / "train.json").is_file() and not (work / name / "adapter").is_dir():
            # a training summary restored from a committed copy, but its adapter is gone
            (work / name / "train.json").unlink()
        log(f"row {name}")
        load0 = os.getloadavg()
        write_json(work / f"{name}.machine.json", _row_machine(load0, args.machine_note, bf16))
        model = args.model
        if "curriculum" in row:
            model = str(train_row(name, args, work, train, dev, log, bf16))
            save_checkpoint(work / name / "train.json", f"{tag}/{name}/train.json")
        rec = _recognizer(model, row, work, bf16, args.data_root)
        for phase in ("dev", "test"):
            path = work / f"{name}.{phase}.jsonl"
            run_phase(rec, phases[name][phase], path, log, keep=f"{tag}/{path.name}")
        del rec
        write_json(work / f"{name}.machine.json", _row_machine(load0, args.machine_note, bf16))
        save_checkpoint(work / f"{name}.machine.json", f"{tag}/{name}.machine.json")
    log("all rows done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
