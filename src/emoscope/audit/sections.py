"""The sections of an audit, one function each: recognition, benchmarks, stimuli, probes,
steering. Each takes the target, the config and a :class:`SectionContext` and returns a
JSON-ready dict with ``status`` (``done`` or ``skipped``, with a ``reason``) and its numbers;
the report (:mod:`emoscope.audit.report`) draws the plots from these dicts alone, so a cached
section renders like a fresh one.

Everything here calls the library's own code: the LLM recogniser and :func:`evaluate`, the
EmoBench / EQ-Bench runners and the A/B harness of :mod:`emoscope.stimuli`, :func:`run_probe`
and the direction and steering evaluation of :mod:`emoscope.steer`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoscope.audit.config import AuditConfig
from emoscope.audit.target import AuditTarget
from emoscope.errors import DatasetNotFoundError

__all__ = [
    "SECTION_FUNCTIONS",
    "SectionContext",
    "benchmarks",
    "probes",
    "recognition",
    "skipped",
    "steering",
    "steering_band",
    "stimuli",
]

#: Share of the predictions on one label from which the report calls it a collapse.
COLLAPSE_SHARE = 0.8
#: Steering points count as fluent when at most this share of replies is degenerate ...
MAX_DEGENERATE = 0.1
#: ... and their median perplexity is at most this multiple of the unsteered one.
MAX_PERPLEXITY_RATIO = 2.0
NEUTRAL_SYSTEM = "You are a helpful assistant. Keep the reply to at most two sentences."


@dataclass
class SectionContext:
    """What a section needs besides the model and config.

    Attributes:
        llm_cache: folder of the LLM response cache and stage-1 cues (resumable).
        work: the audit's own work folder (per-item checkpoints of long sections).
        progress: draw progress bars on stderr.
        say: status lines.
    """

    llm_cache: Path | None
    work: Path
    progress: bool = True
    say: Callable[[str], None] = field(default=lambda _m: None)

    def bar(self, total: int, desc: str) -> Any:
        """A tqdm progress bar on stderr (disabled without ``progress``)."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, disable=not self.progress, leave=False)


def skipped(reason: str) -> dict[str, Any]:
    """The result of a section that did not run, with the reason the report prints."""
    return {"status": "skipped", "reason": reason}


def _data_root(config: AuditConfig) -> str | None:
    return config.data_root


# --------------------------------------------------------------------------------------------
# recognition


def _distribution(counts: Sequence[float], labels: Sequence[str]) -> dict[str, float]:
    total = float(sum(counts))
    return {
        lab: (float(c) / total if total else 0.0) for lab, c in zip(labels, counts, strict=True)
    }


def recognition(target: AuditTarget, config: AuditConfig, ctx: SectionContext) -> dict[str, Any]:
    """Emotion recognition in conversation: the PRC-Emo prompt on MELD test.

    Label scoring when the backend scores (each label's log-likelihood as the answer, a full
    distribution), else the answer is generated and parsed (parse failures counted). Reports
    weighted-F1, accuracy, macro-F1, the majority-class baseline on the same utterances, the
    gold and predicted label distributions (a collapse onto one label is named) and the
    calibration of the label distribution (ECE, Brier, reliability bins).
    """
    from emoscope.datasets import load_dataset
    from emoscope.evaluate import evaluate
    from emoscope.recognizers.llm import LLMRecognizer

    sizes = config.resolved_sizes
    mode = "score" if target.scores else "generate"
    data = load_dataset("meld", "test", root=_data_root(config))
    rec = LLMRecognizer(
        backend=target.backend, model=target.name, prompt="prc", retrieve=sizes.retrieve,
        taxonomy="meld", mode=mode, cache_dir=ctx.llm_cache, cache=ctx.llm_cache is not None,
        cue_max_new_tokens=sizes.cue_max_new_tokens, batch_size=8,
        data_root=_data_root(config),
    )  # fmt: skip
    ctx.say(f"recognition: MELD test, {sizes.meld_limit or 'all'} utterances, {mode} mode")
    result = evaluate(rec, data, batch_size=8, progress=ctx.progress, limit=sizes.meld_limit)
    d = result.to_dict()
    labels = d["labels"]
    conf = np.asarray(d["confusion"], dtype=float)
    gold = _distribution(conf.sum(axis=1).tolist(), labels)
    pred = _distribution(conf.sum(axis=0).tolist(), labels)
    cls = d["classification"]
    top_label = max(pred, key=lambda k: pred[k])
    majority = max(gold, key=lambda k: gold[k])
    share = gold[majority]
    notes = []
    if pred[top_label] >= COLLAPSE_SHARE:
        notes.append(
            f"collapse: {pred[top_label]:.0%} of the predictions are '{top_label}' "
            f"(gold share {gold[top_label]:.0%})"
        )
    if mode == "generate":
        notes.append(
            f"the backend cannot score labels: answers were generated and parsed; "
            f"{d['parse_failures']} of {d['n']} could not be read (counted as "
            "the neutral label with a uniform distribution)"
        )
    if sizes.retrieve == 0:
        notes.append("PRC cue prompt without retrieved demonstrations (k = 0)")
    return {
        "status": "done",
        "mode": mode,
        "prompt": "prc",
        "retrieve": sizes.retrieve,
        "n": d["n"],
        "accuracy": cls["accuracy"],
        "weighted_f1": cls["weighted_f1"],
        "macro_f1": cls["macro_f1"],
        "majority_baseline": {
            "label": majority,
            "accuracy": share,
            "weighted_f1": share * 2 * share / (1 + share),
        },
        "gold_distribution": gold,
        "predicted_distribution": pred,
        "parse_failures": d["parse_failures"],
        "calibration": {k: v for k, v in d["calibration"].items() if k != "bins"},
        "notes": notes,
        "timing": dict(rec.timing),
        "eval": d,
    }


# --------------------------------------------------------------------------------------------
# benchmarks


def _emobench_chance(task: str, root: str | None, limit: int | None) -> float:
    """Expected accuracy of uniform guessing (both EU questions must be right)."""
    from emoscope.datasets import load_emobench
    from emoscope.stimuli import emobench_questions

    items = load_emobench(task, root, "en")[:limit]
    return float(
        np.mean([math.prod(1 / len(q.choices) for q in emobench_questions(it)) for it in items])
    )


def benchmarks(target: AuditTarget, config: AuditConfig, ctx: SectionContext) -> dict[str, Any]:
    """EmoBench EU and EA (English) and EQ-Bench v2.

    With a scoring backend: EmoBench by the log-likelihood of each choice letter (as
    lm-evaluation-harness scores MMLU) and EQ-Bench intensities as the expected value of the
    model's distribution over 0–10 (emoscope's variant) beside the official generated-and-parsed
    protocol. Without one: the official generation protocols of both, unparsed answers wrong
    (EmoBench) or not counted (EQ-Bench), as their authors score them.
    """
    from emoscope.datasets import load_eqbench
    from emoscope.llm.base import generate_texts
    from emoscope.stimuli import eqbench_prompt, run_emobench, run_eqbench

    sizes = config.resolved_sizes
    root = _data_root(config)
    scoring = "label" if target.scores else "generate"
    out: dict[str, Any] = {"status": "done", "emobench": {}, "eqbench": {}, "notes": []}
    bar = ctx.bar(4 if target.scores else 3, "benchmarks")
    try:
        for task in ("EU", "EA"):
            try:
                r = run_emobench(
                    target.backend, task, scoring=scoring, root=root, limit=sizes.emobench_limit
                )
            except DatasetNotFoundError as e:
                out["emobench"][task] = skipped(str(e))
                bar.update(1)
                continue
            r.pop("correct", None)
            r["chance"] = _emobench_chance(task, root, sizes.emobench_limit)
            out["emobench"][task] = {"status": "done"} | r
            bar.update(1)
        try:
            items = load_eqbench(root)[: sizes.eqbench_limit]
        except DatasetNotFoundError as e:
            out["eqbench"] = skipped(str(e))
            return out
        official = run_eqbench(target.backend, root=root, limit=sizes.eqbench_limit)
        bar.update(1)
        # The same prompts and settings as run_eqbench: answered from the response cache.
        raw = generate_texts(
            target.backend,
            [[{"role": "user", "content": eqbench_prompt(it.prompt)}] for it in items[:3]],
            max_new_tokens=60,
        )
        n_q = official["n_questions"]
        out["eqbench"]["official"] = {
            "score": official["score"],
            "parseable": official["parseable"],
            "n_questions": n_q,
            "parse_failure_rate": 1 - official["parseable"] / n_q if n_q else float("nan"),
            "raw_answers": raw,
        }
        if target.scores:
            ev = run_eqbench(
                target.backend, root=root, limit=sizes.eqbench_limit, scoring="expected"
            )
            out["eqbench"]["expected_value"] = {
                k: ev[k] for k in ("score", "parseable", "n_questions")
            }
            bar.update(1)
        else:
            out["notes"].append(
                "the backend cannot score choices: EmoBench answers were generated and parsed "
                "(unparsed = wrong), and EQ-Bench has no expected-value variant"
            )
    finally:
        bar.close()
    return out


# --------------------------------------------------------------------------------------------
# stimuli


def _read_jsonl(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return {r["id"]: r["outcomes"] for r in rows}


def _label_ab(
    target: AuditTarget, task: Any, chosen: Sequence[Any], ckpt: Path, ctx: SectionContext
) -> dict[str, Any]:
    """Label-scored A/B outcomes item by item, appended to a JSONL checkpoint (resumable)."""
    from emoscope.stimuli import compare_conditions, label_outcomes

    done = _read_jsonl(ckpt)
    bar = ctx.bar(len(task.items), f"stimuli {task.name}")
    bar.update(sum(1 for it in task.items if it.id in done))
    try:
        for item in task.items:
            if item.id in done:
                continue
            out = label_outcomes(target.backend, task, chosen, [item])
            done[item.id] = {k: v[0] for k, v in out.items()}
            with open(ckpt, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": item.id, "outcomes": done[item.id]}) + "\n")
            bar.update(1)
    finally:
        bar.close()
    names = ["baseline", *(s.id for s in chosen)]
    scores = {c: [done[it.id][c] for it in task.items] for c in names}
    return compare_conditions(task, scores, chosen, n_boot=2000, seed=0).to_dict()


def stimuli(target: AuditTarget, config: AuditConfig, ctx: SectionContext) -> dict[str, Any]:
    """Sensitivity to emotional stimuli: EmotionPrompt and NegativePrompt A/B against the plain
    prompt on the same items, per stimulus the accuracy, its relative change, the exact
    McNemar p-value and the significance uncorrected and Holm-corrected over the stimuli of a
    task (:mod:`emoscope.stimuli.harness`). Multiple choice is label-scored when the backend
    scores, else generated and parsed."""
    from emoscope.stimuli import load_stimuli, load_task, run_ab

    sizes = config.resolved_sizes
    chosen = load_stimuli(sizes.stimuli)
    scoring = "label" if target.scores else "generate"
    out: dict[str, Any] = {"status": "done", "scoring": scoring, "tasks": {}, "notes": []}
    if not target.scores:
        out["notes"].append(
            "the backend cannot score choices: answers were generated and parsed (an "
            "unreadable answer is wrong)"
        )
    for name in sizes.stimuli_tasks:
        try:
            task = load_task(name, root=_data_root(config), limit=sizes.stimuli_items)
        except DatasetNotFoundError as e:
            out["tasks"][name] = skipped(str(e))
            continue
        ctx.say(f"stimuli: {name}, {len(task.items)} items x {len(chosen) + 1} conditions")
        if target.scores:
            ckpt = ctx.work / f"stimuli-{name}-{len(task.items)}.jsonl"
            res = _label_ab(target, task, chosen, ckpt, ctx)
        else:
            res = run_ab(target.backend, task, chosen, scoring="generate").to_dict()
        res.pop("outputs", None)
        out["tasks"][name] = {"status": "done"} | res
    return out


# --------------------------------------------------------------------------------------------
# probes


def probes(target: AuditTarget, config: AuditConfig, ctx: SectionContext) -> dict[str, Any]:
    """The layer curve of a linear probe ("Decoding Emotion in the Deep"): GoEmotions mapped to
    Ekman, the last-token state of every layer, held-out accuracy and macro-F1 with bootstrap
    intervals, the randomly initialised control and the majority baseline
    (:func:`emoscope.probe.run_probe`)."""
    from emoscope.probe import run_probe

    sizes = config.resolved_sizes
    run = run_probe(
        target.model, "goemotions", taxonomy="ekman", layers="all", kind="linear",
        control=sizes.probe_control, max_train=sizes.probe_train, max_test=sizes.probe_test,
        seed=config.seed, data_root=_data_root(config), n_boot=500, chat_format=True,
        bf16=bool(config.bf16), progress=ctx.say,  # resolved: never None
    )  # fmt: skip
    report = run.report
    scores = report["curves"]["model"]["scores"]
    best = max(scores, key=lambda s: s["accuracy"])
    out: dict[str, Any] = {
        "status": "done",
        "dataset": "goemotions -> ekman",
        "n_train": sizes.probe_train,
        "n_test": sizes.probe_test,
        "n_layers": report["n_layers"],
        "best": {"layer": best["layer"], "accuracy": best["accuracy"],
                 "accuracy_ci": best["accuracy_ci"], "macro_f1": best["macro_f1"]},
        "majority_baseline": report["majority_baseline"],
        "report": report,
    }  # fmt: skip
    if "control" in report["curves"]:
        ctrl = report["curves"]["control"]["scores"]
        out["control_best"] = max(s["accuracy"] for s in ctrl)
    return out


# --------------------------------------------------------------------------------------------
# steering


def steering_band(n_layers: int) -> list[int]:
    """The layers steered: a band of about a sixth of the depth starting a third of the way in
    (SmolLM2's 30 layers: 10–14, the band benchmarks/steer_llm.py chose from its sweep)."""
    start = min(max(1, round(n_layers / 3)), n_layers)
    width = max(1, round(n_layers / 6))
    return list(range(start, min(n_layers, start + width - 1) + 1))


def _spread(items: Sequence[Any], n: int) -> list[Any]:
    n = min(n, len(items))
    return [items[round(i * len(items) / n)] for i in range(n)] if n else []


def _steering_inputs(lm: Any, config: AuditConfig, band: list[int]) -> tuple[Any, list[str], str]:
    """Directions and neutral prompts: the SEV recipe and test set of Wang et al. (2025) when
    the data is there, else emoscope's elicitation scenarios."""
    from emoscope.datasets import data_root
    from emoscope.steer import SCENARIOS, build_directions, build_sev_directions, read_sev

    sizes = config.resolved_sizes
    folder = data_root(config.data_root)
    sev, test = (
        folder / "emotion_circuits" / "sev.jsonl",
        folder / "emotion_circuits" / "test_set.jsonl",
    )
    if sev.is_file() and test.is_file():
        records = _spread(read_sev(sev), sizes.sev_scenarios)
        dirs = build_sev_directions(lm, records, layers=band, seed=config.seed)
        held_out = _spread(read_sev(test), sizes.steer_prompts)
        prompts = [
            f"{str(r['scenario']).strip().rstrip('.')}. {r['event']['neutral']}" for r in held_out
        ]
        return dirs, prompts, f"SEV ({len(records)} scenarios) / SEV test set, neutral events"
    dirs = build_directions(lm, layers=band, seed=config.seed)
    prompts = [
        f"Situation: {s}\nDescribe what happens next in one or two sentences."
        for s in SCENARIOS[-sizes.steer_prompts :]
    ]
    return dirs, prompts, "emoscope elicitation scenarios (no SEV data found)"


def _fluent_best(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The steered point with the highest success among those at matched fluency."""
    base = rows[0]
    ok = [
        r for r in rows[1:]
        if r["degenerate_share"] <= MAX_DEGENERATE
        and math.isfinite(r["perplexity_median"])
        and r["perplexity_median"] <= MAX_PERPLEXITY_RATIO * base["perplexity_median"]
    ]  # fmt: skip
    return dict(max(ok, key=lambda r: r["success"])) if ok else None


def steering(target: AuditTarget, config: AuditConfig, ctx: SectionContext) -> dict[str, Any]:
    """Steerability (Wang et al., 2025): ``alpha * v * RMS(h)`` added at a middle band of
    layers to the last position of every forward pass, towards each emotion, under a neutral
    system prompt. Success = the judge (emoscope's default recogniser, Ekman label) reads the
    target emotion; degenerate replies (empty or looping) are failures before the judge sees
    them (:func:`emoscope.steer.judge_replies`). Fluency: perplexity under the unsteered model
    and the degenerate share. The headline is the best success at matched fluency."""
    from emoscope.recognizers.default import load_default_or
    from emoscope.steer import evaluate_steering

    sizes = config.resolved_sizes
    lm = target.loaded_model()
    band = steering_band(lm.n_layers)
    dirs, prompts, source = _steering_inputs(lm, config, band)
    judge = load_default_or(config.judge, log=ctx.say)
    per_emotion: dict[str, Any] = {}
    bar = ctx.bar(len(sizes.steer_emotions), "steering")
    try:
        for emo in sizes.steer_emotions:
            ev = evaluate_steering(
                lm, dirs, emo, prompts, alphas=sizes.steer_alphas, layers=band,
                positions="last+generated", recognizer=judge, system=NEUTRAL_SYSTEM,
                max_new_tokens=sizes.steer_max_new_tokens, batch_size=8,
            )  # fmt: skip
            per_emotion[emo] = ev
            bar.update(1)
    finally:
        bar.close()
    rows = []
    for i, alpha in enumerate(sizes.steer_alphas):
        pts = [per_emotion[e]["rows"][i] for e in sizes.steer_emotions]
        ppl = [p["perplexity_median"] for p in pts if math.isfinite(p["perplexity_median"])]
        rows.append(
            {
                "alpha": float(alpha),
                "success": float(np.mean([p["expression_accuracy"] for p in pts])),
                "per_emotion": {
                    e: p["expression_accuracy"]
                    for e, p in zip(sizes.steer_emotions, pts, strict=True)
                },
                "degenerate_share": float(np.mean([p["degenerate_share"] for p in pts])),
                "perplexity_median": float(np.median(ppl)) if ppl else float("nan"),
                "distinct_2": float(np.mean([p["distinct_2"] for p in pts])),
            }
        )
    return {
        "status": "done",
        "judge": getattr(judge, "name", str(judge)),
        "layers": band,
        "positions": "last+generated",
        "directions": source,
        "n_prompts": len(prompts),
        "emotions": list(sizes.steer_emotions),
        "rows": rows,
        "matched_fluency": _fluent_best(rows),
        "fluency_rule": (
            f"degenerate share <= {MAX_DEGENERATE:.0%} and median perplexity <= "
            f"{MAX_PERPLEXITY_RATIO:g} x unsteered"
        ),
        "per_emotion": per_emotion,
    }


#: The function of each section, by name.
SECTION_FUNCTIONS: dict[
    str, Callable[[AuditTarget, AuditConfig, SectionContext], dict[str, Any]]
] = {
    "recognition": recognition,
    "benchmarks": benchmarks,
    "stimuli": stimuli,
    "probes": probes,
    "steering": steering,
}
