"""Emotional support on ESConv: the strategy planner, the reply's target emotion, LLM replies.

Stages (each writes its part of ``benchmarks/results/support_esconv.json``; rerunning a stage
replaces its part):

* ``planner``: :class:`~emoscope.support.StrategyPlanner` trained on ESConv **dev** (the train
  split is not in the shared data), regularisation chosen by 5-fold cross-validation on dev,
  evaluated on **test** (all 2,775 supporter turns): accuracy and macro-F1 against the majority
  class, with and without the previous strategy known, and the preference bias of its choices.
  The chosen planner is saved to ``src/emoscope/data/support_planner/``.
* ``emotion``: the target emotion of the reply — the VAD rule vs a transition learned on dev vs
  mirroring the seeker — against emoscope's reading of the human reply on test; the learned
  transition is shipped beside the planner when it beats the rule (``respond`` then uses it).
* ``llm``: generations (see :mod:`support_llm`).

Needs the feature cache of ``benchmarks/support_features.py``.

    python benchmarks/support_esconv.py planner emotion
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from _common import WORK, machine_info
from emoscope._io import write_json
from emoscope.datasets.esconv import STRATEGIES
from emoscope.labels import get_taxonomy
from emoscope.metrics import accuracy, classification_report
from emoscope.support import EmotionTransition, StrategyPlanner, target_emotion
from emoscope.support.emotion import nearest_label
from emoscope.support.respond import TRANSITION_FILE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "support_esconv.json"
PLANNER_DIR = ROOT / "src" / "emoscope" / "data" / "support_planner"
NOTE = (
    "2-core machine shared with ~5 other engineers' jobs (load average in the JSON); "
    "timings are not comparable with an idle machine"
)
N_PREV = len(STRATEGIES) + 1  # previous-strategy one-hot, then 2 trailing flags


def choice_stats(pred: list[str], gold: list[str]) -> dict[str, Any]:
    """Proficiency (accuracy, macro-F1 vs the human strategy) and preference bias.

    Preference bias is KL(chosen || human) in nats between the distribution of strategies
    chosen and the human supporters' distribution over the same turns (add-0.5 smoothing), and
    the share of each strategy chosen beside the human share.
    """
    rep = classification_report(gold, pred, list(STRATEGIES))
    n = len(gold)
    cp, cg = Counter(pred), Counter(gold)
    p = np.array([(cp[s] + 0.5) / (n + 4) for s in STRATEGIES])
    q = np.array([(cg[s] + 0.5) / (n + 4) for s in STRATEGIES])
    return {
        "n": n,
        "accuracy": rep["accuracy"],
        "macro_f1": rep["macro_f1"],
        "kl_to_human": float(np.sum(p * np.log(p / q))),
        "chosen_share": {s: cp[s] / n for s in STRATEGIES},
        "human_share": {s: cg[s] / n for s in STRATEGIES},
        "per_strategy_f1": {s: rep["per_label"][s]["f1"] for s in STRATEGIES},
    }


def load_cache(cache: Path, split: str) -> dict[str, np.ndarray]:
    """The arrays of ``support_features.py`` for one split."""
    with np.load(cache / f"esconv_{split}.npz") as d:
        return {k: d[k] for k in d.files}


def mask_previous(x: np.ndarray) -> np.ndarray:
    """``x`` with the previous strategy set to unknown (as for dialogues without strategies)."""
    out = x.copy()
    block = slice(x.shape[1] - 2 - N_PREV, x.shape[1] - 2)
    out[:, block] = 0.0
    out[:, x.shape[1] - 3] = 1.0
    return out


def _cv(x: np.ndarray, y: list[str], params: dict[str, Any], folds: int = 5) -> float:
    idx = np.random.default_rng(0).permutation(len(y))
    scores = []
    for f in range(folds):
        test = idx[f::folds]
        train = np.setdiff1d(idx, test)
        m = StrategyPlanner(**params).fit(x[train], [y[i] for i in train])
        pred = m.predict(x[test])
        scores.append(
            classification_report([y[i] for i in test], pred, list(STRATEGIES))["macro_f1"]
        )
    return float(np.mean(scores))


def stage_planner(cache: Path) -> dict[str, Any]:
    """Train and evaluate the strategy planner; save the chosen one."""
    dev, test = load_cache(cache, "dev"), load_cache(cache, "test")
    ydev, ytest = [str(s) for s in dev["y"]], [str(s) for s in test["y"]]
    rng = np.random.default_rng(0)
    # Train with the previous strategy hidden on a quarter of the rows, so the planner also
    # serves dialogues whose strategies are unknown.
    hide = rng.random(len(ydev)) < 0.25
    xdev = np.where(hide[:, None], mask_previous(dev["x"]), dev["x"])
    grid = [
        {"l2": l2, "class_weight": cw, "epochs": 300}
        for l2 in (1e-3, 1e-2, 1e-1, 1.0)
        for cw in (None, "balanced")
    ]
    t0 = time.time()
    cv = [{"params": g, "cv_macro_f1": _cv(xdev, ydev, g)} for g in grid]
    best = max(cv, key=lambda r: r["cv_macro_f1"])
    planner = StrategyPlanner(**best["params"]).fit(xdev, ydev)
    fit_s = time.time() - t0
    majority = Counter(ydev).most_common(1)[0][0]
    out = {
        "train": f"ESConv dev, {len(ydev)} supporter turns (train split not available)",
        "test": f"ESConv test, all {len(ytest)} supporter turns",
        "features": "MiniLM default-model contextual features of the last utterance and the "
        "seeker's last utterance, seeker emotion (MELD 7) + VAD, previous strategy, 2 flags",
        "cv": cv,
        "chosen": best["params"],
        "fit_and_cv_seconds": round(fit_s, 1),
        "majority_class": majority,
        "majority": choice_stats([majority] * len(ytest), ytest),
        "planner_previous_known": choice_stats(planner.predict(test["x"]), ytest),
        "planner_previous_unknown": choice_stats(planner.predict(mask_previous(test["x"])), ytest),
    }
    planner.save(PLANNER_DIR)
    return out


def stage_emotion(cache: Path) -> dict[str, Any]:
    """Rule vs learned vs mirror target emotion against the human reply (emoscope's reading)."""
    dev, test = load_cache(cache, "dev"), load_cache(cache, "test")
    keep_dev, keep = dev["has_seeker"], test["has_seeker"]
    transition = EmotionTransition().fit(dev["seeker_vad"][keep_dev], dev["reply_vad"][keep_dev])
    s, r = test["seeker_vad"][keep], test["reply_vad"][keep]
    human_labels = [nearest_label(v) for v in r]
    targets = {
        "rule": [target_emotion(v) for v in s],
        "learned": [target_emotion(v, transition) for v in s],
    }
    rows: dict[str, Any] = {}
    for name, ts in targets.items():
        pts = np.array([t.vad for t in ts])
        rows[name] = {
            "vad_distance": float(np.linalg.norm(pts - r, axis=1).mean()),
            "label_agreement": accuracy(human_labels, [t.label for t in ts]),
            "labels": dict(Counter(t.label for t in ts).most_common()),
        }
    rows["mirror_seeker"] = {
        "vad_distance": float(np.linalg.norm(s - r, axis=1).mean()),
        "label_agreement": accuracy(human_labels, [nearest_label(v) for v in s]),
    }
    mean_pt = r.mean(0)
    rows["constant_mean_reply"] = {
        "vad_distance": float(np.linalg.norm(mean_pt - r, axis=1).mean()),
        "label_agreement": accuracy(human_labels, [nearest_label(mean_pt)] * len(r)),
    }
    winner = min(("rule", "learned"), key=lambda k: rows[k]["vad_distance"])
    shipped = PLANNER_DIR / TRANSITION_FILE
    if winner == "learned":  # `emoscope respond` uses what ships beside the planner
        transition.save(shipped)
    else:
        shipped.unlink(missing_ok=True)
    return {
        "reference": "emoscope's VAD of the human supporter reply (and its nearest palette label)",
        "n_test": int(keep.sum()),
        "n_dev": int(keep_dev.sum()),
        "transition_coef": transition.coef_.tolist() if transition.coef_ is not None else None,
        "rows": rows,
        "winner": winner,
        "human_reply_labels": dict(Counter(human_labels).most_common()),
        "meld_labels": list(get_taxonomy("meld").labels),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stages", nargs="+", choices=["planner", "emotion"])
    ap.add_argument("--cache", type=Path, default=WORK / "esconv")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    for split in ("dev", "test"):
        if not (args.cache / f"esconv_{split}.npz").is_file():
            ap.error(f"{args.cache}/esconv_{split}.npz missing: run benchmarks/support_features.py")
    load0 = os.getloadavg()
    result: dict[str, Any] = json.loads(args.out.read_text("utf-8")) if args.out.is_file() else {}
    for stage in args.stages:
        result[stage] = {"planner": stage_planner, "emotion": stage_emotion}[stage](args.cache)
        result[stage]["machine"] = machine_info(load0, NOTE)
        write_json(args.out, result)
        print(
            json.dumps({stage: {k: v for k, v in result[stage].items() if k != "cv"}}, indent=1)[
                :3000
            ]
        )


if __name__ == "__main__":
    main()
