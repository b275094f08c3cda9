"""Cache emoscope's reading of ESConv (features and predictions of every utterance).

One encoder pass per conversation (rebuilt from the windowed supporter turns), stored per split
as ``<out>/esconv_<split>.npz``: the contextual features of every utterance, and for each
supporter turn the planner's feature vector (:func:`emoscope.support.state.read_states`), the
seeker's emotion distribution/VAD and the human reply's. ``support_esconv.py`` reads these.
Resumable: a split whose file exists is skipped.

    python benchmarks/support_features.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _common import WORK
from emoscope.datasets.esconv import SEEKER, conversations, load_esconv
from emoscope.support.state import read_states


def cache_split(rec: object, split: str, out: Path, root: str | None) -> Path:
    """Write ``esconv_<split>.npz`` (see the module docstring) and return its path."""
    path = out / f"esconv_{split}.npz"
    if path.is_file():
        return path
    turns = load_esconv(split, root)
    convs = conversations(turns)
    keys = ("x", "seeker_probs", "seeker_vad", "reply_probs", "reply_vad", "reply_feat")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    order: list[int] = []
    by_conv: dict[int, list[int]] = {}
    for i, t in enumerate(turns):
        by_conv.setdefault(t.conversation, []).append(i)
    t0 = time.time()
    for c, ((dialogue, positions), members) in enumerate(zip(convs, by_conv.values(), strict=True)):
        preds, feats = rec.predict_with_features([dialogue])  # type: ignore[attr-defined]
        states = read_states(
            rec, dialogue, positions, seeker=SEEKER, require_seeker=False, outputs=(preds, feats)
        )
        for turn_index, pos, st in zip(members, positions, states, strict=True):
            rows["x"].append(st.features)
            rows["seeker_probs"].append(np.asarray(list(st.emotion.probs.values())))
            rows["seeker_vad"].append(np.asarray(st.emotion.vad))
            rows["reply_probs"].append(np.asarray(list(preds[pos].probs.values())))
            rows["reply_vad"].append(np.asarray(preds[pos].vad))
            rows["reply_feat"].append(feats[pos].astype(np.float32))
            order.append(turn_index)
        if c % 20 == 0:
            print(
                f"{split}: {c + 1}/{len(convs)} conversations, {time.time() - t0:.0f}s", flush=True
            )
    idx = np.argsort(order)
    arrays = {k: np.stack(v)[idx] for k, v in rows.items()}
    has_seeker = np.array([any(u.speaker == "seeker" for u in t.history) for t in turns])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays, y=np.array([t.strategy for t in turns]), has_seeker=has_seeker)
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=WORK / "esconv")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from emoscope.recognizers.encoder import EncoderRecognizer

    rec = EncoderRecognizer()
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        print(cache_split(rec, split, args.out, args.data_root), flush=True)


if __name__ == "__main__":
    main()
