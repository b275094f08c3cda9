"""Emotion directions and steering on SmolLM2-135M-Instruct with the SEV recipe.

Issue 12, part 2. Recipe of "Do LLMs 'Feel'? Emotion Circuits Discovery and Control" (Wang et
al., 2025, arXiv:2510.11328): each SEV scenario + event (positive, neutral, negative) is asked
under the system prompt "Always reply in {emotion}. Keep the reply to at most two sentences."
for the six emotions; the last-token residual state is read at every layer, centred within
each (scenario, valence) group, averaged per emotion and normalised
(:func:`emoscope.steer.build_sev_directions`). Directions from a labelled dataset
(GoEmotions, Ekman-mapped, the six emotions) are built too and compared by cosine per layer.

Steering: a neutral system prompt, the scenario + neutral event of held-out test-set scenarios
as the user turn, ``alpha * v * RMS(h)`` added at a band of layers to the last position of
every forward pass (the end of the prompt, then each new token), greedy, at most 100 new
tokens. Every grid point (band x alpha), the prompt-only baseline (the SEV system prompt
asks for the emotion, no steering) and no steering are judged by emoscope's default
recogniser (Ekman label) and by the lexicon recogniser; degenerate replies (empty or looping,
:func:`emoscope.metrics.is_degenerate`) are failures before any judge sees them. Fluency:
perplexity of the reply under the unsteered model (non-degenerate replies) and the
repetition statistics of :func:`emoscope.metrics.repetition_report`.

Peer: ``steering-vectors`` (mean difference of contrast pairs read at the last token, added at
every position), trained on SEV pairs (the emotion's prompt vs another emotion's, same
scenario and valence) and judged the same way.

Resumable: directions are cached and every grid point's replies are a JSONL checkpoint under
``$EMOSCOPE_BENCH_WORK/steer_llm``; the JSON is rewritten after each point.

    setsid nohup nice -n 19 .venv/bin/python benchmarks/steer_llm.py > steer_llm.log 2>&1 &

Writes ``benchmarks/results/steer_llm.json`` and the directions with the chosen defaults,
``benchmarks/results/steer_llm_directions.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import WORK, contention, cpu_times, machine_info  # noqa: E402

NEUTRAL_SYSTEM = "You are a helpful assistant. Keep the reply to at most two sentences."
JUDGES = ("default", "lexicon")
PAPER = {
    "model": "Llama-3.2-3B-Instruct",
    "steering_accuracy": 0.9122,
    "with_circuit_modulation": 0.9965,
    "source": "Wang et al., 2025, arXiv:2510.11328",
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _spread(n_total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(n_total)`` (covering every theme)."""
    n = min(n, n_total)
    return sorted({round(i * n_total / n) for i in range(n)})


def _bands(text: str) -> list[list[int]]:
    out = []
    for part in text.split(";"):
        a, _, b = part.strip().partition("-")
        out.append(list(range(int(a), int(b or a) + 1)))
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    tmp.replace(path)


def _score(
    lm: Any, judges: dict[str, Any], prompts: list[str], replies: list[str], systems: list[str]
) -> list[dict[str, Any]]:
    """Judge labels (None = degenerate), perplexity under the unsteered model, per reply."""
    from emoscope.metrics import is_degenerate
    from emoscope.steer import continuation_perplexity, judge_replies

    labels = {name: judge_replies(replies, rec, "ekman") for name, rec in judges.items()}
    rows = []
    for i, (p, r, sysp) in enumerate(zip(prompts, replies, systems, strict=True)):
        ppl = continuation_perplexity(lm, [p], [r], system=sysp)[0]
        rows.append(
            {
                "reply": r,
                "degenerate": is_degenerate(r),
                "perplexity": ppl,
                **{f"label_{n}": labels[n][i] for n in judges},
            }
        )
    return rows


def _summary(rows: list[dict[str, Any]], emotions: list[str]) -> dict[str, Any]:
    """Success per emotion and overall for both judges, agreement, fluency."""
    import numpy as np

    from emoscope.metrics import repetition_report

    out: dict[str, Any] = {"n": len(rows)}
    for judge in JUDGES:
        per = {}
        for e in emotions:
            mine = [r for r in rows if r["target"] == e]
            per[e] = float(np.mean([r[f"label_{judge}"] == e for r in mine])) if mine else None
        hits = [r[f"label_{judge}"] == r["target"] for r in rows]
        out[f"success_{judge}"] = {"overall": float(np.mean(hits)), "per_emotion": per}
    judged = [r for r in rows if not r["degenerate"]]
    out["judge_agreement"] = (
        float(np.mean([r["label_default"] == r["label_lexicon"] for r in judged]))
        if judged
        else None
    )
    out["n_judged"] = len(judged)
    ppl = [r["perplexity"] for r in judged if r["perplexity"] == r["perplexity"]]
    out["perplexity_median"] = float(np.median(ppl)) if ppl else None
    out["perplexity_mean"] = float(np.mean(ppl)) if ppl else None
    out.update(repetition_report([r["reply"] for r in rows]))
    return out


def _contrast_pairs(
    lm: Any, sev: list[dict[str, Any]], emotions: list[str]
) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Rendered SEV prompts of the peers' training share and, per emotion, contrast pairs.

    A pair is the emotion's prompt and another emotion's prompt of the same (scenario,
    valence), the other emotion rotating, so that each pair differs only in the emotion.
    """
    from emoscope.activations import render_chat
    from emoscope.steer import sev_prompts

    convs, labels, groups = sev_prompts(sev[: max(4, len(sev) // 4)])
    texts = [render_chat(lm.tokenizer, c) for c in convs]
    pairs: dict[str, list[tuple[str, str]]] = {}
    for ei, e in enumerate(emotions):
        pos = [i for i, lab in enumerate(labels) if lab == e]
        pairs[e] = []
        for k, i in enumerate(pos):
            others = [j for j, g in enumerate(groups) if g == groups[i] and labels[j] != e]
            pairs[e].append((texts[i], texts[others[(k + ei) % len(others)]]))
    return texts, pairs


def _band_rms(lm: Any, texts: list[str], band: list[int]) -> dict[int, float]:
    """Mean root-mean-square of the last-token state at each layer of ``band``."""
    from emoscope.activations import extract_activations

    acts = extract_activations(lm, texts, layers=band, pooling="last", batch_size=16,
                               add_special_tokens=False)  # fmt: skip
    return {lay: float((acts.layer(lay) ** 2).mean(-1).mean() ** 0.5) for lay in band}


def _repeng_peer(
    args: argparse.Namespace,
    lm: Any,
    sev: list[dict[str, Any]],
    prompts: list[str],
    emotions: list[str],
    neutral: list[str],
    targets: list[str],
    run_point: Any,
    gen: dict[str, Any],
    result: dict[str, Any],
) -> None:
    """repeng control vectors (PCA of contrast-pair differences) on the same pairs and prompts.

    repeng 0.4.0 declares ``numpy<2``; installed ``--no-deps`` it fails to import under numpy 2
    only because three type annotations name ``np.float_``, so that alias is set before the
    import (nothing else in repeng uses it). Its unit directions are scaled to ``alpha`` times
    the stream's mean RMS at each layer, the same units as emoscope's ``alpha``; repeng adds
    them at every (non-padding) position.
    """
    import numpy as np

    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    import repeng
    import torch
    from repeng import ControlModel, ControlVector, DatasetEntry

    from emoscope.steer import generate

    band = _bands(args.peer_band)[0]
    texts, pairs = _contrast_pairs(lm, sev, emotions)
    rms = _band_rms(lm, texts[:48], band)
    model = ControlModel(lm.model, [lay - 1 for lay in band])
    try:
        vectors = {}
        for e in emotions:
            data = [DatasetEntry(a, b) for a, b in pairs[e]]
            vectors[e] = ControlVector.train(
                model, lm.tokenizer, data, hidden_layers=[lay - 1 for lay in band]
            )
        result["peer_repeng"] = {
            "package": "repeng 0.4.0, pip install --no-deps (declares numpy<2; np.float_ "
            "aliased to np.float64 for its annotations)",
            "version": getattr(repeng, "__version__", "0.4.0"),
            "method": "pca_diff",
            "training_pairs_per_emotion": len(data),
            "layers": band,
            "scale": "alpha * mean RMS of the layer's last-token state (emoscope units)",
            "layer_rms": {str(k): round(v, 3) for k, v in rms.items()},
            "applied_at": "every non-padding position",
        }
        for alpha in [float(a) for a in args.peer_alphas.split(",")]:

            def peer_gen(alpha: float = alpha) -> list[str]:
                out: list[str] = []
                for e in emotions:
                    raw = {
                        lay - 1: torch.tensor(
                            alpha * rms[lay] * vectors[e].directions[lay - 1], dtype=torch.float32
                        )
                        for lay in band
                    }
                    model.set_raw_control(raw)
                    try:
                        out += generate(lm, prompts, system=NEUTRAL_SYSTEM, **gen)
                    finally:
                        model.reset()
                return out

            name = f"peer_repeng_L{band[0]}-{band[-1]}_a{alpha:g}"
            run_point(name, peer_gen, neutral, targets)
            result["points"][name].update({"layers": band, "alpha": alpha})
    finally:
        model.unwrap()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/emotion_circuits")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--n-sev", type=int, default=40, help="SEV scenarios for the directions")
    ap.add_argument("--n-test", type=int, default=12, help="test-set scenarios steered")
    ap.add_argument("--n-dataset", type=int, default=600, help="GoEmotions texts (directions)")
    ap.add_argument("--alphas", default="2,4,8")
    ap.add_argument("--bands", default="12;10-14;11-20")
    ap.add_argument("--peer-multipliers", default="2,4,8")
    ap.add_argument("--peer-band", default="10-14")
    ap.add_argument("--peer-alphas", default="2,4", help="repeng, in emoscope's alpha units")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=72)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-degenerate", type=float, default=0.1)
    ap.add_argument("--work", type=Path, default=WORK / "steer_llm")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/steer_llm.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from emoscope._io import write_json
    from emoscope.activations import load_model
    from emoscope.datasets import load_dataset
    from emoscope.metrics import repetition_report
    from emoscope.recognizers import load_recognizer
    from emoscope.steer import (
        SEV_EMOTIONS,
        SEV_SYSTEM_PROMPT,
        EmotionDirections,
        _sev_user,
        build_sev_directions,
        direction_cosines,
        directions_from_dataset,
        generate,
        read_sev,
    )

    load0 = os.getloadavg()
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "points").mkdir(exist_ok=True)
    lm = load_model(args.model)
    emotions = list(SEV_EMOTIONS.values())
    prompt_name = {v: k for k, v in SEV_EMOTIONS.items()}
    sev = read_sev(args.data / "sev.jsonl")
    sev = [sev[i] for i in _spread(len(sev), args.n_sev)]
    test_all = read_sev(args.data / "test_set.jsonl")
    test = [test_all[i] for i in _spread(len(test_all), args.n_test)]
    prompts = [_sev_user(r, "neutral") for r in test]
    result: dict[str, Any] = {
        "model": args.model,
        "setup": {
            "recipe": "Wang et al. 2025: SEV system-prompt elicitation, last-token residual at "
            "every layer, centred within (scenario, valence), mean per emotion, unit length",
            "n_sev_scenarios": len(sev),
            "n_sev_prompts": len(sev) * 3 * len(emotions),
            "n_test_scenarios": len(test),
            "test_event": "neutral",
            "test_scenarios": [r.get("skeleton_id") for r in test],
            "neutral_system_prompt": NEUTRAL_SYSTEM,
            "emotion_system_prompt": SEV_SYSTEM_PROMPT,
            "positions": "last+generated",
            "max_new_tokens": args.max_new_tokens,
            "decoding": "greedy",
            "judges": {"default": "emoscope default recogniser, Ekman label", "lexicon": "lexicon"},
            "degenerate_rule": "emoscope.metrics.is_degenerate: failure before any judge",
            "perplexity": "of each reply under the unsteered model with the neutral system "
            "prompt (also for the prompt-only replies, so that all points compare)",
            "torch_threads": args.threads,
        },
        "paper": PAPER,
    }

    def save() -> None:
        result["machine"] = machine_info(load0, "2 shared cores; other engineers' jobs (one "
                                         "LLM job) ran at the same time")  # fmt: skip
        write_json(args.out, result)

    t0 = time.perf_counter()
    sev_file = args.work / f"sev_directions_{len(sev)}.safetensors"
    if sev_file.is_file():
        sev_dirs = EmotionDirections.load(sev_file)
    else:
        sev_dirs = build_sev_directions(lm, sev, batch_size=36)
        sev_dirs.save(sev_file)
        result["seconds_sev_directions"] = round(time.perf_counter() - t0, 1)
    _log(f"SEV directions ({len(sev)} scenarios)")
    ds_file = args.work / f"goemotions_directions_{args.n_dataset}.safetensors"
    if ds_file.is_file():
        ds_dirs = EmotionDirections.load(ds_file)
    else:
        ds = load_dataset("goemotions", "train", root=args.data_root, taxonomy="ekman")
        ds_dirs = directions_from_dataset(lm, ds, emotions=emotions, max_examples=args.n_dataset)
        ds_dirs.save(ds_file)
    _log("GoEmotions directions")
    cos = direction_cosines(sev_dirs, ds_dirs)
    result["directions_cosine_sev_vs_goemotions"] = {
        "per_emotion_layer": {e: {str(k): round(v, 3) for k, v in d.items()}
                              for e, d in cos.items()},
        "max_abs_per_emotion": {e: round(max(abs(v) for v in d.values()), 3)
                                for e, d in cos.items()},
        "goemotions_label_counts": ds_dirs.meta.get("label_counts"),
    }  # fmt: skip
    save()

    judges = {name: load_recognizer(name) for name in JUDGES}
    rows_target = [e for e in emotions for _ in prompts]
    rows_prompt = [p for _ in emotions for p in prompts]
    rows_pid = [i for _ in emotions for i in range(len(prompts))]

    def run_point(name: str, make: Any, systems: list[str], targets: list[str]) -> None:
        path = args.work / "points" / f"{name}.jsonl"
        rows = _read_jsonl(path)
        if len(rows) != len(systems):
            t = time.perf_counter()
            before, st0 = os.getloadavg(), cpu_times()
            replies = make()
            ps = rows_prompt if len(systems) == len(rows_prompt) else prompts
            pid = rows_pid if len(systems) == len(rows_prompt) else list(range(len(prompts)))
            scored = _score(lm, judges, ps, replies, systems)
            rows = [
                {"point": name, "prompt_id": i, "target": tg, **s}
                for i, tg, s in zip(pid, targets, scored, strict=True)
            ]
            _write_jsonl(path, rows)
            meta = {"seconds": round(time.perf_counter() - t, 1),
                    **contention(before, os.getloadavg(), st0, cpu_times())}  # fmt: skip
            (path.with_suffix(".meta.json")).write_text(json.dumps(meta), "utf-8")
        meta_path = path.with_suffix(".meta.json")
        meta = json.loads(meta_path.read_text("utf-8")) if meta_path.is_file() else {}
        own = rows
        if name == "none":  # one reply per prompt, scored against every target
            rows = [dict(r, target=e) for e in emotions for r in rows]
        summ = _summary(rows, emotions)
        summ.update(repetition_report([r["reply"] for r in own]))
        summ.update(meta)
        summ["examples"] = [
            {k: r[k] for k in ("target", "reply", "degenerate", "label_default", "label_lexicon")}
            for r in rows[:: max(1, len(rows) // 6)][:6]
        ]
        result.setdefault("points", {})[name] = summ
        _log(f"{name}: success {summ['success_default']['overall']:.3f} (lexicon "
             f"{summ['success_lexicon']['overall']:.3f}), degenerate "
             f"{summ['degenerate_share']:.3f}, ppl {summ['perplexity_median']}")  # fmt: skip
        save()

    gen = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    run_point("none", lambda: generate(lm, prompts, system=NEUTRAL_SYSTEM, **gen),
              [NEUTRAL_SYSTEM] * len(prompts), ["-"] * len(prompts))  # fmt: skip

    def prompt_only() -> list[str]:
        out: list[str] = []
        for e in emotions:
            sysp = SEV_SYSTEM_PROMPT.format(emotion=prompt_name[e])
            out += generate(lm, prompts, system=sysp, **gen)
        return out

    neutral = [NEUTRAL_SYSTEM] * len(rows_target)
    run_point("prompt_only", prompt_only, neutral, rows_target)
    alphas = [float(a) for a in args.alphas.split(",")]
    steer_points = []
    for band in _bands(args.bands):
        for alpha in alphas:
            name = f"steer_L{band[0]}-{band[-1]}_a{alpha:g}"
            plan = sev_dirs.row_plan(rows_target, alpha, band)
            run_point(
                name,
                lambda plan=plan: generate(
                    lm, rows_prompt, plan=plan, positions="last+generated",
                    system=NEUTRAL_SYSTEM, **gen,
                ),
                neutral, rows_target,
            )  # fmt: skip
            result["points"][name].update({"layers": band, "alpha": alpha})
            steer_points.append(name)

    ok = [n for n in steer_points if result["points"][n]["degenerate_share"] <= args.max_degenerate]
    pool = ok or steer_points
    best = max(pool, key=lambda n: result["points"][n]["success_default"]["overall"])
    choice = {
        "point": best,
        "layers": result["points"][best]["layers"],
        "alpha": result["points"][best]["alpha"],
        "rule": f"highest default-judge success among points with at most "
        f"{args.max_degenerate:.0%} degenerate replies"
        + ("" if ok else " (none qualified: the best of all points)"),
    }
    result["chosen_defaults"] = choice
    sev_dirs.meta.update({"default_layers": choice["layers"], "default_alpha": choice["alpha"],
                          "chosen_by": "benchmarks/steer_llm.py", "model": args.model})  # fmt: skip
    saved = sev_dirs.save(ROOT / "benchmarks/results/steer_llm_directions.safetensors")
    result["directions_file"] = str(saved.relative_to(ROOT))
    save()

    if not args.no_peer:
        import steering_vectors
        from steering_vectors import train_steering_vector

        peer_band = _bands(args.peer_band)[0]
        texts, pairs = _contrast_pairs(lm, sev, emotions)
        vectors = {}
        for e in emotions:
            vectors[e] = train_steering_vector(
                lm.model, lm.tokenizer, pairs[e], layers=[lay - 1 for lay in peer_band],
                read_token_index=-1,
            )  # fmt: skip
        sv_rms = _band_rms(lm, texts[:48], peer_band)
        norm_ratio = {
            e: {
                str(lay): round(float(v.layer_activations[lay - 1].norm()) / sv_rms[lay], 3)
                for lay in peer_band
            }
            for e, v in vectors.items()
        }
        result["peer"] = {
            "vector_norm_over_rms": norm_ratio,
            "package": f"steering-vectors {steering_vectors.__version__}"
            if hasattr(steering_vectors, "__version__")
            else "steering-vectors 0.12.2",
            "installed": "pip install --no-deps steering-vectors==0.12.2 (its deps are pinned)",
            "training_pairs_per_emotion": len(pairs[emotions[0]]),
            "layers": peer_band,
            "applied_at": "every position (library default min_token_index=0)",
        }
        for mult in [float(m) for m in args.peer_multipliers.split(",")]:

            def peer_gen(mult: float = mult) -> list[str]:
                out: list[str] = []
                for e in emotions:
                    with vectors[e].apply(lm.model, multiplier=mult):
                        out += generate(lm, prompts, system=NEUTRAL_SYSTEM, **gen)
                return out

            name = f"peer_steering_vectors_L{peer_band[0]}-{peer_band[-1]}_m{mult:g}"
            run_point(name, peer_gen, neutral, rows_target)
            result["points"][name].update({"layers": peer_band, "multiplier": mult})
    if not args.no_peer:
        _repeng_peer(args, lm, sev, prompts, emotions, neutral, rows_target, run_point, gen, result)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    save()
    _log("done")


if __name__ == "__main__":
    main()
