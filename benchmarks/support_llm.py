"""LLM supporter replies on ESConv test, with and without emoscope's plugin (HEF-style A/B).

A fixed subset of test supporter turns (``--n`` turns evenly spaced over the file, only turns
after at least one seeker turn) is answered by the LLM in each configuration:

* ``plugin``: emoscope's seeker emotion, cause words, the planner's strategy and the target
  emotion in the prompt (:class:`~emoscope.support.Supporter`);
* ``no-plugin``: the conversation alone.

Each answer is appended to ``<work>/replies.<configs>.jsonl`` (and kept in the response cache),
so an interrupted run resumes where it stopped. ``--summarise`` scores what is there: the share
of degenerate replies first, then BLEU-2, ROUGE-L, distinct-1/2 against the human reply, the
perplexity of the human reply under each prompt, and the emotional appropriateness (distance
between emoscope's VAD of the reply and the target VAD; how often the reply's nearest palette
label is the target label), into ``benchmarks/results/support_esconv.json`` under ``llm``.

    python benchmarks/support_llm.py --model smollm2-135m-instruct --n 500
    python benchmarks/support_llm.py ... --summarise
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import WORK, machine_info
from emoscope._io import write_json
from emoscope.datasets.esconv import SEEKER, load_esconv
from emoscope.dialogue import Dialogue
from emoscope.metrics import bleu, degenerate_share, distinct_n, is_degenerate, rouge_l
from emoscope.support.emotion import nearest_label, target_emotion

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "support_esconv.json"
CONFIGS = ("plugin", "no-plugin")
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


def generate(args: argparse.Namespace) -> None:
    """Answer every (turn, config) not yet in ``replies.jsonl``."""
    import torch

    torch.set_num_threads(args.threads)
    from emoscope.llm.hf import HFBackend
    from emoscope.support.respond import Supporter

    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / f"replies.{args.configs.replace(',', '+')}.jsonl"
    done = set()
    if out.is_file():
        for line in out.read_text("utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                done.add((r["index"], r["config"]))
    turns = load_esconv("test", args.data_root)
    picks = subset(args.n, args.data_root)
    backend = HFBackend(args.model, cache=args.work / "cache.sqlite", batch_size=1)
    supporter = Supporter(backend, max_new_tokens=args.max_new_tokens)
    with out.open("a", encoding="utf-8") as fh:
        for k, i in enumerate(picks):
            t = turns[i]
            for config in args.configs.split(","):
                if (i, config) in done:
                    continue
                t0 = time.time()
                ans = supporter.respond(t.history, plugin=config == "plugin", seeker=SEEKER)
                gen_s = time.time() - t0
                row = {
                    "index": i,
                    "line": t.line,
                    "config": config,
                    "reply": ans.reply,
                    "reference": t.reply,
                    "gold_strategy": t.strategy,
                    "strategy": ans.strategy,
                    "target": None if ans.target_emotion is None else ans.target_emotion.to_dict(),
                    "seeker_vad": ans.seeker_emotion["vad"],
                    "ppl_reference": _perplexity(backend, ans.prompt, t.reply),
                    "prompt_tokens": ans.usage.get("prompt_tokens", 0),
                    "completion_tokens": ans.usage.get("completion_tokens", 0),
                    "seconds": round(gen_s, 3),
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
            print(f"{k + 1}/{len(picks)} turns", flush=True)


def summarise(args: argparse.Namespace) -> dict[str, Any]:
    """Score ``replies.jsonl`` (turns answered in every configuration only)."""
    from emoscope.recognizers.encoder import EncoderRecognizer

    rows = [
        json.loads(x)
        for f in sorted(args.work.glob("replies.*.jsonl"))
        for x in f.read_text("utf-8").splitlines()
        if x.strip()
    ]
    by: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in CONFIGS}
    for r in rows:
        by[r["config"]][r["index"]] = r
    common = sorted(set.intersection(*(set(v) for v in by.values())))
    rec = EncoderRecognizer()
    out: dict[str, Any] = {
        "model": args.model,
        "n_turns": len(common),
        "subset": f"{args.n} ESConv test supporter turns evenly spaced over the file (turns "
        "after a seeker turn); scored on the turns answered in every configuration",
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy",
        "configs": {},
    }
    for config in CONFIGS:
        items = [by[config][i] for i in common]
        hyp = [r["reply"] for r in items]
        ref = [r["reference"] for r in items]
        preds = rec.predict([Dialogue([r["reply"]]) for r in items]) if items else []
        # The rule's target is the reference for both configurations (computed from the seeker).
        targets = [target_emotion(tuple(r["seeker_vad"])) for r in items]
        vad = np.array([p.vad for p in preds]) if preds else np.zeros((0, 3))
        tv = np.array([t.vad for t in targets]) if targets else np.zeros((0, 3))
        out["configs"][config] = {
            "degenerate_share": degenerate_share(hyp) if hyp else None,
            "bleu_2": bleu(hyp, ref, 2) if hyp else None,
            "rouge_l": rouge_l(hyp, ref) if hyp else None,
            "distinct_1": distinct_n(hyp, 1) if hyp else None,
            "distinct_2": distinct_n(hyp, 2) if hyp else None,
            "ppl_reference_median": float(np.median([r["ppl_reference"] for r in items]))
            if items
            else None,
            "target_vad_distance": float(np.linalg.norm(vad - tv, axis=1).mean()) if hyp else None,
            "target_label_match": float(
                np.mean([nearest_label(v) == t.label for v, t in zip(vad, targets, strict=True)])
            )
            if hyp
            else None,
            "seconds_per_reply_median": float(np.median([r["seconds"] for r in items]))
            if items
            else None,
            "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in items]))
            if items
            else None,
            "examples": [
                {
                    "reference": r["reference"],
                    "reply": r["reply"],
                    "degenerate": is_degenerate(r["reply"]),
                }
                for r in items[:5]
            ],
        }
    if common:
        from collections import Counter

        pl = [by["plugin"][i]["strategy"] for i in common]
        gold = [by["plugin"][i]["gold_strategy"] for i in common]
        out["planner_strategy_on_subset"] = {
            "accuracy": float(np.mean([a == b for a, b in zip(pl, gold, strict=True)])),
            "chosen": dict(Counter(pl).most_common()),
            "human": dict(Counter(gold).most_common()),
        }
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
