"""Emotional stimuli and EI benchmarks inside a real LLM, by label scoring.

EmotionPrompt EP01–EP11 (Li et al., 2023, "Large Language Models Understand and Can be Enhanced
by Emotional Stimuli", arXiv:2307.11760) and NegativePrompt NP01–NP10 (Wang et al., IJCAI 2024,
arXiv:2405.02814), each A/B against the plain prompt on EmoBench EU and EA, English (Sabour et
al., ACL 2024) and on the built-in ``emotion`` set, multiple choice scored by choice
log-likelihood as lm-evaluation-harness does (letters for EmoBench; :mod:`emoscope.stimuli.choice`):
accuracy per stimulus, relative change, exact McNemar p, significance uncorrected and
Holm-corrected over the 21 stimuli of a task. Raw label likelihoods of a small model carry a
label prior (SmolLM2 answers ``anger`` to almost every built-in ``emotion`` item), so each task
records its choice counts (``diagnostics``), and the built-in set also gets an A/B after
content-free calibration (``calibrated``). Then EQ-Bench v2 (Paech, 2023) with its official
generation-based scoring (parse-failure rate from the raw answers) and the expected-value
variant. Resumable: every scored item is appended to a JSONL checkpoint under
``$EMOSCOPE_BENCH_WORK/stimuli_llm/``; ``--until`` (UTC ``HH:MM``) stops the EmoBench stage in
time for the rest, on the items of a fixed seeded order, so the subset is stated, not chosen.

    python benchmarks/stimuli_llm.py --until 06:20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, bf16_note, machine_info, restore_checkpoint, save_checkpoint
from emoscope._io import write_json

OUT = Path(__file__).resolve().parent / "results" / "stimuli_llm.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHORS = {
    "EmotionPrompt": {"Instruction Induction": "+8.00%", "BIG-Bench": "+115%"},
    "NegativePrompt": {"Instruction Induction": "+12.89%", "BIG-Bench": "+46.25%"},
}


def _load_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _deadline(text: str | None) -> float:
    if not text:
        return float("inf")
    h, m = (int(x) for x in text.split(":"))
    now = dt.datetime.now(dt.UTC)
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return t.timestamp()


def _ab_stage(backend: Any, task: Any, stimuli: list[Any], ckpt: Path, stop: float) -> dict:
    from emoscope.stimuli import compare_conditions, label_predictions

    done = {k: r for k, r in _load_jsonl(ckpt).items() if "loglik" in r}
    for item in task.items:
        if item.id in done:
            continue
        if time.time() > stop:
            break
        t0 = time.time()
        preds = label_predictions(backend, task, stimuli, [item])
        row = {
            "id": item.id,
            "outcomes": {c: float(all(q.correct for q in v[0])) for c, v in preds.items()},
            "predicted": {c: [q.predicted for q in v[0]] for c, v in preds.items()},
            "answers": [q.answer for q in task.questions(item)],
            "loglik": {
                c: [[round(x, 4) for x in q.loglik] for q in v[0]] for c, v in preds.items()
            },
            "seconds": round(time.time() - t0, 2),
        }
        _append(ckpt, row)
        done[item.id] = row
        print(f"{task.name} {item.id}: {row['seconds']} s", flush=True)
    ids = [it.id for it in task.items if it.id in done]
    scores = {
        c: [done[i]["outcomes"][c] for i in ids] for c in ["baseline", *(s.id for s in stimuli)]
    }
    if not ids:
        return {"task": task.name, "n_items": 0, "items_scored": [], "rows": []}
    res = compare_conditions(task, scores, stimuli, n_boot=2000, seed=0).to_dict()
    res.pop("outputs", None)
    res["items_scored"] = ids
    res["median_seconds_per_item"] = sorted(done[i]["seconds"] for i in ids)[len(ids) // 2]
    res["diagnostics"] = _diagnostics([done[i] for i in ids])
    if len(ids) > 1:
        res["diagnostics"]["position_prior"] = position_prior_check([done[i] for i in ids])
    return res


def _content_free(
    backend: Any, task: Any, stimuli: list[Any], path: Path, rows: dict[str, Any]
) -> dict[str, Any]:
    """Contextual calibration by a content-free input (Zhao et al., 2021, "Calibrate Before
    Use"): the label words' log-likelihoods for the task's prompt with the sentence replaced by
    "N/A", under each condition, are subtracted from every item's before the argmax. Needs no
    development data, so each stimulus is calibrated on its own prompt. Built-in label tasks
    only (their prompt ends in ``Sentence: <text>``)."""
    from emoscope.stimuli import ChoiceQuestion, compare_conditions, score_questions

    item = task.items[0]
    head, sep, _text = item.prompt.rpartition("Sentence: ")
    if not sep:
        raise SystemExit(f"{task.name}: the prompt has no 'Sentence: ' to replace")
    q0 = task.questions(item)[0]
    if path.is_file():
        cf = json.loads(path.read_text("utf-8"))
    else:
        q = ChoiceQuestion(f"{task.name}-content-free", head + sep + "N/A", q0.choices, 0)
        res = score_questions(backend, [q], [None, *stimuli])[0]
        cf = {r.condition: list(r.loglik) for r in res}
        write_json(path, cf)
    ids = [it.id for it in task.items if it.id in rows]
    scores = {}
    for c in cf:
        ll = np.array([rows[i]["loglik"][c][0] for i in ids]) - np.array(cf[c])
        gold = np.array([rows[i]["answers"][0] for i in ids])
        scores[c] = (ll.argmax(1) == gold).astype(float).tolist()
    res = compare_conditions(task, scores, stimuli, n_boot=2000, seed=0).to_dict()
    res.pop("outputs", None)
    res["method"] = (
        "content-free calibration: each condition's label log-likelihoods for the prompt with "
        'the sentence "N/A" subtracted (Zhao et al., 2021)'
    )
    res["content_free_loglik"] = cf
    res["baseline_predicted_counts"] = dict(
        zip(
            q0.choices,
            np.bincount(
                (np.array([rows[i]["loglik"]["baseline"][0] for i in ids]) - cf["baseline"])
                .argmax(1), minlength=len(q0.choices),
            ).tolist(),
            strict=True,
        )
    )  # fmt: skip
    return res


def position_prior_check(rows: list[dict[str, Any]], condition: str = "baseline") -> dict:
    """Whether the choices carry anything beyond a preference for a letter: the accuracy of
    ``condition`` after each choice position's mean log-likelihood over the *other* items
    (leave-one-out, so no item calibrates itself) is subtracted, beside the accuracy of a
    uniform guess (an item counts as right only if all of its questions are)."""
    n_q = len(rows[0]["answers"])
    right = np.ones(len(rows))
    chance = np.ones(len(rows))
    for qi in range(n_q):
        ll = [np.asarray(r["loglik"][condition][qi], dtype=float) for r in rows]
        width = max(len(x) for x in ll)
        table = np.full((len(rows), width), np.nan)
        for i, x in enumerate(ll):
            table[i, : len(x)] = x
        total, count = np.nansum(table, 0), (~np.isnan(table)).sum(0)
        for i, x in enumerate(ll):
            k = len(x)
            others = np.maximum(count[:k] - 1, 1)
            prior = (total[:k] - x) / others
            right[i] *= int(np.argmax(x - prior)) == rows[i]["answers"][qi]
            chance[i] *= 1.0 / k
    return {
        "condition": condition,
        "accuracy_position_prior_removed": float(right.mean()),
        "accuracy_uniform_guess": float(chance.mean()),
        "method": "each choice position's mean log-likelihood over the other items subtracted",
    }


def _diagnostics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the chosen answers look like, to tell a real chance result from a constant one:
    per question position (EmoBench EU: 0 emotion, 1 cause), how often each choice index is
    predicted under the plain prompt and across all stimuli, how often it is the gold answer,
    the accuracy of always answering the most common gold index, and how many items got
    distinct baseline scores (a constant score would give one)."""
    from collections import Counter

    n_q = len(rows[0]["answers"])
    out: dict[str, Any] = {}
    for qi in range(n_q):
        gold = Counter(r["answers"][qi] for r in rows if len(r["answers"]) > qi)
        base = Counter(r["predicted"]["baseline"][qi] for r in rows if len(r["answers"]) > qi)
        stim = Counter(
            p[qi] for r in rows for c, p in r["predicted"].items() if c != "baseline"
            if len(p) > qi
        )  # fmt: skip
        n = sum(gold.values())
        out[f"question_{qi}"] = {
            "n": n,
            "gold_choice_counts": dict(sorted(gold.items())),
            "baseline_predicted_counts": dict(sorted(base.items())),
            "stimuli_predicted_counts": dict(sorted(stim.items())),
            "baseline_share_of_most_common_prediction": max(base.values()) / n,
            "always_most_common_gold_accuracy": max(gold.values()) / n,
            "distinct_baseline_score_rows": len(
                {tuple(r["loglik"]["baseline"][qi]) for r in rows if len(r["answers"]) > qi}
            ),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--until", default=None, help="UTC HH:MM at which the EmoBench stage stops")
    ap.add_argument("--eqbench-limit", type=int, default=171)
    ap.add_argument("--eqbench-models", default="smollm2-135m-instruct,gemma-3-270m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--machine-note",
        default="2 CPU cores; the load averages show what else ran",
        help="what else ran on the machine, recorded in the results",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from emoscope.llm.hf import HFBackend
    from emoscope.stimuli import load_stimuli, load_task, run_eqbench

    load0 = os.getloadavg()
    # A model's EQ-Bench figures from an earlier run at the same size are kept, not redone;
    # read before this run's first save() rewrites the file.
    earlier = json.loads(OUT.read_text("utf-8")).get("eqbench", {}) if OUT.is_file() else {}
    work = WORK / "stimuli_llm"
    work.mkdir(parents=True, exist_ok=True)
    # Per-item checkpoints, restored from their committed copies on a new machine.
    # The response cache (rollback journal, committed per batch) holds EQ-Bench's generations.
    kept = [
        "emotion.jsonl",
        "emotion_content_free.json",
        "emobench-eu.jsonl",
        "emobench-ea.jsonl",
        "responses.sqlite",
    ]
    for name in kept:
        restore_checkpoint(work / name, f"stimuli_llm/{name}")
    stimuli = load_stimuli("emotionprompt,negativeprompt")
    cache = work / "responses.sqlite"
    from emoscope.recognizers.precision import bf16_native

    # bf16 autocast only where the CPU multiplies bf16 natively: emulated, it is far slower.
    bf16 = bf16_native()
    backend = HFBackend(args.model, device="cpu", batch_size=32, bf16_autocast=bf16, cache=cache)
    result: dict[str, Any] = {
        "model": args.model,
        "scoring": "label (choice log-likelihood; EmoBench: choice letters, lm-eval MMLU style; "
        f"emotion: the label words), {'bf16 autocast' if bf16 else 'float32'}",
        "significance": "exact McNemar per stimulus vs plain prompt; 'significance' uncorrected "
        "(* p<0.05), 'significance_holm' Holm-corrected over the 21 stimuli of a task",
        "anchors_relative_change": ANCHORS,
        "tasks": {},
    }

    def save() -> None:
        result["machine"] = machine_info(
            load0, f"{args.machine_note}; torch threads {args.threads}; {bf16_note()}"
        )
        write_json(OUT, result)
        for name in kept:
            save_checkpoint(work / name, f"stimuli_llm/{name}")

    stop = _deadline(args.until)
    emotion = load_task("emotion")
    result["tasks"]["emotion"] = _ab_stage(
        backend, emotion, stimuli, work / "emotion.jsonl", float("inf")
    )
    result["tasks"]["emotion"]["calibrated"] = _content_free(
        backend, emotion, stimuli, work / "emotion_content_free.json",
        _load_jsonl(work / "emotion.jsonl"),
    )  # fmt: skip
    save()
    # EmoBench EU and EA (English) in one fixed seeded order, interleaved.
    eu, ea = load_task("emobench-eu", root=DATA), load_task("emobench-ea", root=DATA)
    for t in (eu, ea):
        random.Random(12).shuffle(t.items)
    for k in range(0, max(len(eu.items), len(ea.items)), 10):
        for t in (eu, ea):
            sub = load_task(t.name, root=DATA)
            sub.items = t.items[: k + 10]
            result["tasks"][t.name] = _ab_stage(
                backend, sub, stimuli, work / f"{t.name}.jsonl", stop
            )
            n_done = len(result["tasks"][t.name]["items_scored"])
            result["tasks"][t.name]["subset"] = (
                f"all {n_done} English items, in the order of random.Random(12)"
                if n_done == len(t.items)
                else f"first {n_done} of the {len(t.items)} English items shuffled with "
                "random.Random(12) (time budget)"
            )
        save()
        if time.time() > stop:
            break
    # EQ-Bench v2: official generation-based scoring and the expected-value variant.
    result["eqbench"] = {}
    for name in args.eqbench_models.split(","):
        old = earlier.get(name, {})
        if old.get("official", {}).get("n_questions") == args.eqbench_limit:
            result["eqbench"][name] = old
            continue
        t_start = time.time()
        be = (
            backend
            if name == args.model
            else HFBackend(name, device="cpu", batch_size=8, bf16_autocast=bf16, cache=cache)
        )
        off = run_eqbench(be, root=DATA, limit=args.eqbench_limit)
        from emoscope.datasets import load_eqbench
        from emoscope.llm.base import generate_texts
        from emoscope.stimuli.eqbench import eqbench_prompt

        items = load_eqbench(DATA)[: args.eqbench_limit]
        raw = generate_texts(
            be,
            [[{"role": "user", "content": eqbench_prompt(it.prompt)}] for it in items],
            max_new_tokens=60,
        )
        ev = run_eqbench(be, root=DATA, limit=args.eqbench_limit, scoring="expected")
        from emoscope.stimuli import parse_eqbench_answer

        result["eqbench"][name] = {
            "official": {k: off[k] for k in ("score", "parseable", "n_questions")}
            | {"parse_failure_rate": 1 - off["parseable"] / off["n_questions"]},
            "raw_answers_first_10": [
                {"answer": a, "parsed": parse_eqbench_answer(a)[0], "question_score": q}
                for a, q in zip(raw[:10], off["question_scores"][:10], strict=True)
            ],
            "expected_value": {k: ev[k] for k in ("score", "parseable", "n_questions")},
            "wall_seconds": round(time.time() - t_start, 1),
            "cpu_model": machine_info(load0, "")["cpu_model"],
        }
        save()
    result["eqbench_floor"] = eqbench_floor(args.eqbench_limit)
    save()
    print(json.dumps({k: v for k, v in result.items() if k != "tasks"}, indent=1)[:3000])


def eqbench_floor(limit: int) -> dict[str, Any]:
    """The v2 score of a constant answer of 5 to the same questions: what the expected-value
    variant gives a model whose intensity distributions are flat."""
    from emoscope.datasets import load_eqbench
    from emoscope.stimuli.eqbench import eqbench_constant_score

    items = load_eqbench(DATA)[:limit]
    return {
        "constant_5_score": eqbench_constant_score(items, 5.0),
        "n_questions": len(items),
        "what": "every emotion of every question answered 5; the expected value of a flat "
        "distribution over 0-10",
    }


if __name__ == "__main__":
    main()
