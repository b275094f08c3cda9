"""LLM supporter replies on ESConv test, with and without emoscope's plugin (HEF-style A/B).

A fixed subset of test supporter turns (``--n`` turns evenly spaced over the file, only turns
after at least one seeker turn) is answered by the LLM in each configuration:

* ``plugin``: emoscope's seeker emotion, cause words, the planner's strategy and the target
  emotion in the prompt (:class:`~emoscope.support.Supporter`);
* ``plugin-llm``: the same prompt with the LLM's own strategy (label scoring over the eight,
  :mod:`emoscope.support.llm_strategy`, as ``respond --strategy llm``);
* ``no-plugin``: the conversation alone.

First the LLM's strategy is scored on every turn of the subset (``<work>/strategy.jsonl``):
its proficiency (accuracy / macro-F1 against the human supporter's strategy) and preference
bias (:func:`emoscope.support.llm_strategy.preference`, and KL to the human shares) sit beside
the planner's on the same turns. Then each answer is appended to
``<work>/replies.<configs>.jsonl`` (and kept in the response cache), so an interrupted run
resumes where it stopped; ``--repetition-penalty`` is recorded in each row. ``--summarise``
scores the rows of the penalty it is given: the share of degenerate replies first, then
BLEU-2, ROUGE-L, distinct-1/2 against the human reply, the perplexity of the human reply under
each prompt, and the emotional appropriateness (distance between emoscope's VAD of the reply
and the target VAD; how often the reply's nearest palette label is the target label), into
``benchmarks/results/support_esconv.json`` under ``llm``; ``--pilot DIR`` adds the
repetition-penalty pilot (one sub-folder per setting).

    python benchmarks/support_llm.py --model smollm2-135m-instruct --n 500
    python benchmarks/support_llm.py ... --summarise
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from _common import WORK, machine_info
from emoscope._io import write_json
from emoscope.datasets.esconv import SEEKER, load_esconv
from emoscope.dialogue import Dialogue
from emoscope.metrics import bleu, degenerate_share, distinct_n, is_degenerate, rouge_l
from emoscope.support.emotion import EmotionTransition, nearest_label, target_emotion

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "support_esconv.json"
CONFIGS = ("plugin", "plugin-llm", "no-plugin")
NOTE = (
    "2-core machine shared with ~5 other engineers' jobs; seconds per reply are inflated "
    "accordingly (load average in the JSON)"
)


def subset(n: int, root: str | None) -> list[int]:
    """``n`` test turn indices evenly spaced over the file, among turns with a seeker turn."""
    turns = load_esconv("test", root)
    ok = [i for i, t in enumerate(turns) if any(u.speaker == SEEKER for u in t.history)]
    picks = np.linspace(0, len(ok) - 1, num=min(n, len(ok))).round().astype(int)
    return [ok[i] for i in sorted(set(picks.tolist()))]


def _perplexity(backend: Any, messages: list[dict[str, str]], reference: str) -> float:
    """Perplexity of ``reference`` as the assistant's answer to ``messages`` (hf backend)."""
    import torch

    prompt = backend.render(messages)
    tok = backend.tokenizer
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(reference, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + r_ids])
    with torch.inference_mode():
        logits = backend.lm(ids).logits[0, len(p_ids) - 1 : -1]
    logp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(r_ids)[:, None])
    return float(math.exp(-logp.mean().item()))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def score_strategies(args: argparse.Namespace, backend: Any, supporter: Any) -> dict[int, str]:
    """The LLM's strategy on every turn of the subset (resumable); ``{index: strategy}``."""
    from emoscope.support.llm_strategy import strategy_scores
    from emoscope.support.state import read_states

    out = args.work / "strategy.jsonl"
    done = {r["index"]: r for r in _read_jsonl(out)}
    turns = load_esconv("test", args.data_root)
    picks = subset(args.n, args.data_root)
    with out.open("a", encoding="utf-8") as fh:
        for k, i in enumerate(picks):
            if i in done:
                continue
            t = turns[i]
            (state,) = read_states(supporter.recognizer, t.history, seeker=SEEKER)
            t0 = time.time()
            scores = strategy_scores(backend, t.history, state.seeker, supporter.prompt)
            row = {
                "index": i,
                "gold_strategy": t.strategy,
                "scores": scores,
                "strategy": max(scores, key=scores.__getitem__),
                "planner_strategy": supporter.planner.predict(state.features[None])[0],
                "seconds": round(time.time() - t0, 3),
            }
            done[i] = row
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            if (k + 1) % 50 == 0:
                print(f"strategy {k + 1}/{len(picks)} turns", flush=True)
    return {i: r["strategy"] for i, r in done.items()}


def generate(args: argparse.Namespace) -> None:
    """Score the LLM's strategies, then answer every (turn, config) not yet in the replies."""
    import torch

    torch.set_num_threads(args.threads)
    from emoscope.llm.hf import HFBackend
    from emoscope.support.prompt import SupportPrompt, load_support_template
    from emoscope.support.respond import Supporter

    args.work.mkdir(parents=True, exist_ok=True)
    configs = args.configs.split(",")
    out = args.work / f"replies.{args.configs.replace(',', '+')}.jsonl"
    rp = args.repetition_penalty
    done = {
        (r["index"], r["config"])
        for r in _read_jsonl(out)
        if r.get("repetition_penalty", 1.0) == rp
    }
    turns = load_esconv("test", args.data_root)
    picks = subset(args.n, args.data_root)
    backend = HFBackend(
        args.model, cache=args.work / "cache.sqlite", batch_size=args.batch, repetition_penalty=rp
    )
    prompt = SupportPrompt(load_support_template(args.prompt)) if args.prompt else None
    supporter = Supporter(backend, prompt=prompt, max_new_tokens=args.max_new_tokens)
    llm_choice = score_strategies(args, backend, supporter) if "plugin-llm" in configs else {}
    todo = [i for i in picks if any((i, c) not in done for c in configs)]
    with out.open("a", encoding="utf-8") as fh:
        for start in range(0, len(todo), args.batch):
            chunk = todo[start : start + args.batch]
            for config in configs:
                idx = [i for i in chunk if (i, config) not in done]
                if not idx:
                    continue
                # plugin-llm names the LLM's scored choice (what --strategy llm does, without
                # scoring the turn twice).
                strategies = [llm_choice[i] if config == "plugin-llm" else "auto" for i in idx]
                t0 = time.time()
                answers = supporter.respond_many(
                    [turns[i].history for i in idx],
                    strategy=strategies,
                    plugin=config != "no-plugin",
                    seeker=SEEKER,
                )
                gen_s = (time.time() - t0) / len(idx)
                for i, ans in zip(idx, answers, strict=True):
                    t = turns[i]
                    row = {
                        "index": i,
                        "line": t.line,
                        "config": config,
                        "repetition_penalty": rp,
                        "max_new_tokens": args.max_new_tokens,
                        "prompt_template": supporter.prompt.to_dict()["fingerprint"],
                        "reply": ans.reply,
                        "reference": t.reply,
                        "gold_strategy": t.strategy,
                        "strategy": ans.strategy,
                        "target": None
                        if ans.target_emotion is None
                        else ans.target_emotion.to_dict(),
                        "seeker_vad": ans.seeker_emotion["vad"],
                        "ppl_reference": _perplexity(backend, ans.prompt, t.reply),
                        "prompt_tokens": ans.usage.get("prompt_tokens", 0),
                        "completion_tokens": ans.usage.get("completion_tokens", 0),
                        "seconds": round(gen_s, 3),
                    }
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
            print(f"{start + len(chunk)}/{len(todo)} turns", flush=True)


#: A reply that talks about the task instead of to the seeker: it names the strategy or the
#: roles, announces "the next turn" or "a response:", or writes a bold label. Every one of 12
#: replies drawn at random from the matches of the 500-turn run was such a reply.
_ABOUT_THE_TASK = re.compile(
    r"\bstrateg(?:y|ies)\b|\bnext (?:turn|step)\b|\b(?:reply|response|turn)\s*:"
    r"|\*\*[^*\n]{1,40}\*\*|\bhere(?:'s| is) (?:the|a|my) (?:reply|response|next|supportive)"
    r"|\b(?:seeker|supporter|help-seeker)\b",
    re.IGNORECASE,
)


def _format_leaks(reply: str) -> dict[str, bool]:
    """Failure modes seen in raw replies: the prompt's ``###`` headings copied, the model
    writing further turns of the conversation (``Seeker:``/``Supporter:`` lines), and a reply
    about the task rather than to the seeker (:data:`_ABOUT_THE_TASK`)."""
    return {
        "echoes_headings": "###" in reply,
        "writes_more_turns": any(
            line.strip().startswith(("Seeker:", "Supporter:")) for line in reply.splitlines()
        ),
        "about_the_task": _ABOUT_THE_TASK.search(reply) is not None,
    }


def _leak_shares(replies: list[str]) -> dict[str, float]:
    """The share of ``replies`` showing each failure of :func:`_format_leaks`."""
    leaks = [_format_leaks(h) for h in replies]
    return {f"{k}_share": float(np.mean([x[k] for x in leaks])) for k in leaks[0]}


def reply_stats(items: list[dict[str, Any]], recognizer: Any, transition: Any) -> dict[str, Any]:
    """Degenerate share first, then overlap, diversity, perplexity, emotional appropriateness.

    The target emotion is the one ``respond`` uses (the shipped transition, else the rule),
    computed from the seeker's VAD for every configuration, so the no-plugin replies are held
    to the same target they were never told.
    """
    if not items:
        return {"n": 0}
    hyp = [r["reply"] for r in items]
    ref = [r["reference"] for r in items]
    preds = recognizer.predict([Dialogue([h or "."]) for h in hyp])
    targets = [target_emotion(tuple(r["seeker_vad"]), transition) for r in items]
    vad = np.array([p.vad for p in preds])
    tv = np.array([t.vad for t in targets])
    step = max(len(items) // 6, 1)
    return {
        "n": len(items),
        "degenerate_share": degenerate_share(hyp),
        "empty_share": float(np.mean([not h.strip() for h in hyp])),
        **_leak_shares(hyp),
        "bleu_2": bleu(hyp, ref, 2),
        "rouge_l": rouge_l(hyp, ref),
        "distinct_1": distinct_n(hyp, 1),
        "distinct_2": distinct_n(hyp, 2),
        "ppl_reference_median": float(np.median([r["ppl_reference"] for r in items])),
        "target_vad_distance": float(np.linalg.norm(vad - tv, axis=1).mean()),
        "target_label_match": float(
            np.mean([nearest_label(v) == t.label for v, t in zip(vad, targets, strict=True)])
        ),
        "completion_tokens_mean": float(np.mean([r["completion_tokens"] for r in items])),
        "hit_length_cap_share": float(
            np.mean([r["completion_tokens"] >= r.get("max_new_tokens", 60) for r in items])
        ),
        "seconds_per_reply_median": float(np.median([r["seconds"] for r in items])),
        "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in items])),
        "examples": [
            {
                "line": r["line"],
                "strategy": r["strategy"],
                "reference": r["reference"],
                "reply": r["reply"],
                "degenerate": is_degenerate(r["reply"]),
            }
            for r in items[::step][:6]
        ],
    }


def strategy_summary(work: Path, root: str | None) -> dict[str, Any] | None:
    """The LLM's strategy choice beside the planner's and the majority class, same turns."""
    from emoscope.support.llm_strategy import preference
    from support_esconv import choice_stats

    rows = _read_jsonl(work / "strategy.jsonl")
    if not rows:
        return None
    gold = [r["gold_strategy"] for r in rows]
    majority = Counter(t.strategy for t in load_esconv("dev", root)).most_common(1)[0][0]
    out: dict[str, Any] = {
        "n": len(rows),
        "method": "label scoring: summed log-likelihood of each strategy name as the answer to "
        "[user] strategy of support.toml (uncalibrated: the model's own preference)",
        "preference_measure": "Bradley-Terry strength per strategy from the off-diagonal "
        "confusion counts (chosen i where the human used j = i beats j; MM fit, pseudo-count "
        "0.1), bias = std of the strengths (sum 1), after Kang et al. (ACL 2024); plus "
        "KL(chosen || human) of the strategy shares, which needs no model of pairwise wins",
        "scoring_seconds_median": float(np.median([r["seconds"] for r in rows])),
    }
    for name, pred in (
        ("llm", [r["strategy"] for r in rows]),
        ("planner", [r["planner_strategy"] for r in rows]),
        (f"majority ({majority})", [majority] * len(rows)),
    ):
        out[name] = {**choice_stats(pred, gold), **preference(pred, gold)}
    return out


PILOT_NOTE = (
    "Repetition-penalty pilot before the full run: --n 16 test turns (a different, smaller "
    "evenly spaced subset), greedy, 60 new tokens. default_rpX = the shipped support.toml at "
    "repetition penalty X; prose_rp1.0 = the plugin system message rewritten as two plain "
    "sentences without '###' headings ('The seeker seems to feel ${seeker_emotion}, mostly "
    "because of ${cause_words}. In your reply, ${strategy_definition} Sound ${target_emotion}. "
    "Do not mention these instructions.'), plugin only; the rp1.3 run was stopped after 8 "
    "turns. Chosen for the full run: 1.1 (no degenerate replies and no echoed headings in the "
    "pilot, ROUGE-L between 1.0 and 1.3; at 1.3 the replies drift off topic, because the "
    "penalty also pushes away from every word of the conversation in the prompt)"
)


def pilot_summary(pilot: Path) -> dict[str, Any]:
    """Degeneration and format failures per pilot setting (one sub-folder each)."""
    out: dict[str, Any] = {"note": PILOT_NOTE}
    for d in sorted(x for x in pilot.iterdir() if x.is_dir()):
        rows = [r for f in sorted(d.glob("replies.*.jsonl")) for r in _read_jsonl(f)]
        for config in CONFIGS:
            hyp = [r["reply"] for r in rows if r["config"] == config]
            ref = [r["reference"] for r in rows if r["config"] == config]
            if not hyp:
                continue
            out[f"{d.name}/{config}"] = {
                "n": len(hyp),
                "degenerate_share": degenerate_share(hyp),
                **_leak_shares(hyp),
                "distinct_2": distinct_n(hyp, 2),
                "rouge_l": rouge_l(hyp, ref),
                "bleu_2": bleu(hyp, ref, 2),
                "completion_tokens_mean": float(
                    np.mean([r["completion_tokens"] for r in rows if r["config"] == config])
                ),
            }
    return out


def summarise(args: argparse.Namespace) -> dict[str, Any]:
    """Score the replies of ``--repetition-penalty`` (turns answered in every configuration)."""
    from emoscope.recognizers.encoder import EncoderRecognizer
    from emoscope.support.respond import TRANSITION_FILE, default_planner_path

    rows = [
        r
        for f in sorted(args.work.glob("replies.*.jsonl"))
        for r in _read_jsonl(f)
        if r.get("repetition_penalty", 1.0) == args.repetition_penalty
    ]
    by: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in CONFIGS}
    for r in rows:
        by[r["config"]][r["index"]] = r
    common = sorted(set.intersection(*(set(v) for v in by.values())))
    rec = EncoderRecognizer()
    path = default_planner_path() / TRANSITION_FILE
    transition = EmotionTransition.load(path) if path.is_file() else None
    out: dict[str, Any] = {
        "model": args.model,
        "n_turns_all_configs": len(common),
        "n_answered": {c: len(v) for c, v in by.items()},
        "subset": f"{args.n} ESConv test supporter turns evenly spaced over the file (turns "
        "after a seeker turn); replies scored on the turns answered in every configuration",
        "max_new_tokens": args.max_new_tokens,
        "decoding": f"greedy, repetition_penalty {args.repetition_penalty}, batches of "
        f"{args.batch} (left-padded)",
        "strategy": strategy_summary(args.work, args.data_root),
        "configs": {c: reply_stats([by[c][i] for i in common], rec, transition) for c in CONFIGS},
    }
    if args.pilot is not None and args.pilot.is_dir():
        out["repetition_penalty_pilot"] = pilot_summary(args.pilot)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="short name, folder, GGUF file or Hub id")
    ap.add_argument("--work", type=Path, default=WORK / "esconv" / "llm")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--max-new-tokens", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=8, help="replies generated per batch")
    ap.add_argument("--prompt", default=None, help="support prompt TOML [default: built-in]")
    ap.add_argument("--pilot", type=Path, default=None, help="--summarise: pilot runs folder")
    ap.add_argument("--summarise", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    load0 = os.getloadavg()
    if not args.summarise:
        bad = set(args.configs.split(",")) - set(CONFIGS)
        if bad:
            ap.error(f"unknown configs {sorted(bad)}; expected: {', '.join(CONFIGS)}")
        generate(args)
        return
    result: dict[str, Any] = json.loads(args.out.read_text("utf-8")) if args.out.is_file() else {}
    result["llm"] = summarise(args)
    result["llm"]["machine"] = machine_info(load0, NOTE)
    write_json(args.out, result)
    print(json.dumps(result["llm"], indent=1)[:4000])


if __name__ == "__main__":
    main()
