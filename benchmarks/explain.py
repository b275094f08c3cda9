"""Faithfulness and cost of word attributions: occlusion (shipped) against integrated gradients.

    python benchmarks/explain.py [--n 120] [--steps 20]

Writes ``benchmarks/results/explain.json``. Texts: the first ``--n`` GoEmotions test comments
with one non-neutral Ekman emotion and at least 4 words, explained with the default model in
Ekman labels (routed: the GoEmotions head for single texts), for each text's top label.

Methods:

- ``occlusion``: :func:`emoscope.explain.explain` (weight = probability drop without the word);
- ``integrated_gradients``: integrated gradients (Sundararajan et al., 2017, "Axiomatic
  Attribution for Deep Networks") of the label's log-probability with respect to the embedding
  layer's output, baseline = the embeddings of the same positions with every word token replaced
  by [PAD] ([CLS]/[SEP] kept), ``--steps`` Riemann steps; token scores (sum over the hidden
  dimension) summed into the words of :func:`emoscope.explain.split_words` by character offsets.

Faithfulness (deletion curve): remove the k top-attributed words (k = 1..5, fewer when a text is
shorter) and record the drop of the explained label's probability; the same for k random words
(mean of 3 draws, seed 0). A faithful method drops more than random. Cost: seconds per text,
median over texts, both methods run in this one process side by side.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

import numpy as np
import torch

from _common import machine_info
from emoscope._io import write_json
from emoscope.datasets import load_dataset
from emoscope.explain import cue_words, explain, remove_words, split_words
from emoscope.labels import GOEMOTIONS_TO_EKMAN
from emoscope.recognizers.encoder import EncoderRecognizer, route_head

KS = (1, 2, 3, 4, 5)


def texts_for(n: int) -> list[str]:
    out = []
    for e in load_dataset("goemotions", "test").examples:
        ek = {GOEMOTIONS_TO_EKMAN[lab] for lab in e.labels}
        if len(ek) == 1 and "neutral" not in ek and len(split_words(e.text)) >= 4:
            out.append(e.text)
        if len(out) == n:
            break
    return out


def integrated_gradients(rec: EncoderRecognizer, text: str, label: str, steps: int) -> list[float]:
    """Word scores of integrated gradients on the embedding output (see the module docstring)."""
    model = rec.model
    tok = rec.tokenizer
    enc = tok._tok.encode(text, add_special_tokens=False)  # the `tokenizers` encoding
    ids = [tok.cls_token_id, *enc.ids[: rec.config.max_seq_length - 2], tok.sep_token_id]
    offsets = [(0, 0), *enc.offsets[: rec.config.max_seq_length - 2], (0, 0)]
    input_ids = torch.tensor([ids])
    base_ids = torch.tensor([[ids[0], *[tok.pad_token_id] * (len(ids) - 2), ids[-1]]])
    mask = torch.ones_like(input_ids)
    head, mapping = route_head(rec.config, rec.taxonomy.name, "text")
    col = rec.labels.index(label)
    with torch.no_grad():
        emb = model.backbone.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        base = model.backbone.embeddings(
            input_ids=base_ids, token_type_ids=torch.zeros_like(base_ids)
        )
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (base + alphas[:, None, None] * (emb - base)).requires_grad_(True)
    m = mask.expand(steps, -1)
    h = model._run_layers(path, m, 0, len(model.backbone.encoder.layer))
    vec = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    feats = model.contextualise(vec, [[i] for i in range(steps)], [[0]] * steps, [1] * steps)
    p = head.probabilities(model.head_logits(feats, head.name))
    if mapping is not None:
        p = p @ torch.tensor(mapping, dtype=p.dtype)
    torch.log(p[:, col]).sum().backward()
    assert path.grad is not None
    tokens = ((emb - base)[0] * path.grad.mean(0)).sum(-1).detach().numpy()
    words = split_words(text)
    scores = [0.0] * len(words)
    for t, (s, e) in zip(tokens, offsets, strict=True):
        if e <= s:
            continue
        for w, (_, ws, we) in enumerate(words):
            if s < we and e > ws:
                scores[w] += float(t)
                break
    return scores


def deletion(rec: EncoderRecognizer, text: str, label: str, order: list[int]) -> list[float]:
    """Probability drop of ``label`` after removing the first k words of ``order``, per k."""
    k_max = min(max(KS), len(order))
    variants = [remove_words(text, order[:k]) for k in range(1, k_max + 1)]
    full = rec.predict([text])[0].probs[label]
    return [full - p.probs[label] for p in rec.predict(variants)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results/explain.json")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    load0 = os.getloadavg()
    rec = EncoderRecognizer(taxonomy="ekman")
    rng = random.Random(0)
    texts = texts_for(args.n)
    curves: dict[str, list[list[float]]] = {
        "occlusion": [],
        "integrated_gradients": [],
        "random": [],
    }
    cost: dict[str, list[float]] = {"occlusion": [], "integrated_gradients": []}
    agree = []
    for text in texts:
        t = time.perf_counter()
        (pred,) = explain(rec, [text])
        cost["occlusion"].append(time.perf_counter() - t)
        label = str(pred.cues["attribution_label"])
        occ = [c.weight for c in cue_words(pred)]
        t = time.perf_counter()
        ig = integrated_gradients(rec, text, label, args.steps)
        cost["integrated_gradients"].append(time.perf_counter() - t)
        n = len(occ)
        curves["occlusion"].append(
            deletion(rec, text, label, sorted(range(n), key=lambda i: -occ[i]))
        )
        curves["integrated_gradients"].append(
            deletion(rec, text, label, sorted(range(n), key=lambda i: -ig[i]))
        )
        draws = [deletion(rec, text, label, rng.sample(range(n), n)) for _ in range(3)]
        curves["random"].append([float(np.mean(col)) for col in zip(*draws, strict=True)])
        agree.append(int(np.argmax(occ)) == int(np.argmax(ig)))

    def curve(rows: list[list[float]]) -> list[dict[str, Any]]:
        out = []
        for k in KS:
            vals = [r[k - 1] for r in rows if len(r) >= k]
            out.append({"k": k, "mean_drop": round(float(np.mean(vals)), 4), "n": len(vals)})
        return out

    result = {
        "texts": f"first {len(texts)} GoEmotions test comments with one non-neutral Ekman "
        "emotion and >= 4 words; default model, Ekman labels (GoEmotions head), top label",
        "n": len(texts),
        "ig_steps": args.steps,
        "deletion_curve": {m: curve(rows) for m, rows in curves.items()},
        "seconds_per_text_median": {m: round(statistics.median(v), 4) for m, v in cost.items()},
        "top_word_agreement_occlusion_vs_ig": round(float(np.mean(agree)), 4),
        "choice": "occlusion (shipped in emoscope.explain)",
        "machine": machine_info(
            load0,
            "2 shared cores; other engineers' jobs ran at the same time, so the seconds "
            "are noisy; both methods ran interleaved text by text, so their ratio is fairer",
        ),
    }
    write_json(args.out, result)
    print(result["deletion_curve"], result["seconds_per_text_median"])


if __name__ == "__main__":
    main()
