"""Persistence and malleability of what the probes read (Zhang & Zhong, 2025, arXiv:2510.04064).

* Persistence: an emotional text is followed by neutral tokens; the probe is applied to the
  last-token state after each further token, giving accuracy against token offset (decoders).
* Malleability: the same texts under different system prompts; how the probe's read-out moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.probe.probes import Probe
from emoscope.stats import classification_scores

if TYPE_CHECKING:
    from emoscope.activations import LoadedModel

__all__ = [
    "NEUTRAL_CONTINUATION",
    "malleability",
    "persistence_curve",
]

# Neutral filler (emoscope's own text) appended after an emotional text to measure persistence.
NEUTRAL_CONTINUATION = (
    "The meeting is on Tuesday at ten in the second floor office. Bring the printed agenda and "
    "the budget table. The room has a projector, twelve chairs and a whiteboard. After the "
    "meeting the minutes will be sent to every participant by email. The next item on the list "
    "is the schedule for the spring term, which starts in the first week of March. Classes run "
    "from nine to four, with a lunch break at noon. The library is open on weekdays and closes "
    "at six. Parking is available behind the main building, and the bus stops at the corner "
    "every fifteen minutes. Forms can be collected at the front desk and returned by Friday."
)


def persistence_curve(
    lm: LoadedModel,
    probes: Mapping[int, Probe],
    texts: Sequence[str],
    y: Sequence[int],
    *,
    offsets: Sequence[int] = (0, 1, 2, 4, 8, 16, 32, 64),
    neutral_text: str = NEUTRAL_CONTINUATION,
    batch_size: int = 8,
    chat_format: bool = False,
) -> dict[str, Any]:
    """Accuracy of last-token probes at growing distances into a neutral continuation.

    Each text is followed by the tokens of ``neutral_text`` (repeated if needed to reach the
    largest offset). At offset ``k`` the probe of each layer reads the hidden state of the
    ``k``-th neutral token (offset 0 is the text's own last token), which in a causal model is
    the last-token state of the prefix "text + k neutral tokens". The probes must have been
    trained on last-token states of the same model, and with ``chat_format`` when they were
    (``run_probe(..., chat_format=True)``): each text is then rendered as a user turn
    followed by the generation prompt, so the neutral tokens stand where the answer would.

    Raises:
        EmoscopeError: the model is not causal, or an offset is negative.
    """
    from emoscope.activations import render_chat, token_activations

    if not lm.causal:
        raise EmoscopeError(
            "persistence needs a decoder (causal) model: an encoder's token states see the "
            "whole continuation"
        )
    offs = sorted({int(k) for k in offsets})
    if not offs or offs[0] < 0:
        raise EmoscopeError(f"offsets must be non-negative integers, got {list(offsets)}")
    tok = lm.tokenizer
    neutral = tok(" " + neutral_text, add_special_tokens=False)["input_ids"]
    while len(neutral) < offs[-1]:
        neutral = neutral + neutral
    layers = sorted(probes)
    seqs, ends = [], []
    templated = chat_format and bool(getattr(tok, "chat_template", None))
    for t in texts:
        if chat_format:
            t = render_chat(tok, [{"role": "user", "content": t}])
        ids = tok(t, add_special_tokens=not templated)["input_ids"]
        seqs.append(list(ids) + list(neutral[: offs[-1]]))
        ends.append(len(ids) - 1)
    states = token_activations(lm, seqs, layers=layers, batch_size=batch_size)
    gold = np.asarray(y)
    curves: dict[str, list[dict[str, float]]] = {}
    for li, lay in enumerate(layers):
        rows = []
        for k in offs:
            x = np.stack([s[li, e + k] for s, e in zip(states, ends, strict=True)])
            pred = probes[lay].predict(x)
            acc, f1 = classification_scores(gold, pred)
            rows.append({"offset": k, "accuracy": acc, "macro_f1": f1})
        curves[str(lay)] = rows
    return {
        "n": len(texts), "offsets": offs, "layers": curves, "neutral_text": neutral_text,
        "chat_format": chat_format,
    }  # fmt: skip


def malleability(
    lm: LoadedModel,
    probes: Mapping[int, Probe],
    labels: Sequence[str],
    texts: Sequence[str],
    y: Sequence[int],
    system_prompts: Mapping[str, str],
    *,
    batch_size: int = 16,
    max_length: int = 512,
) -> dict[str, Any]:
    """How system prompts move the probes' read-out of the same user texts.

    Every text is rendered as a chat turn (:func:`~emoscope.activations.render_chat`) with no
    system prompt (condition ``none``) and with each of ``system_prompts``; the probes read the
    last-token state. Per condition and layer: accuracy against the gold labels, the mean
    probability of each label, the shift of those means from ``none``, and the share of texts
    whose predicted label differs from ``none``. Probes should be trained on the same chat
    rendering without a system prompt (``run_probe(..., chat_format=True)``).
    """
    from emoscope.activations import extract_activations, render_chat

    layers = sorted(probes)
    gold = np.asarray(y)
    conditions: dict[str, str | None] = {"none": None, **dict(system_prompts)}
    out: dict[str, Any] = {"n": len(texts), "labels": list(labels), "conditions": {}}
    base_probs: dict[int, np.ndarray] = {}
    base_pred: dict[int, np.ndarray] = {}
    for name, system in conditions.items():
        rendered = []
        for t in texts:
            msgs = [] if system is None else [{"role": "system", "content": system}]
            rendered.append(render_chat(lm.tokenizer, [*msgs, {"role": "user", "content": t}]))
        templated = bool(getattr(lm.tokenizer, "chat_template", None))
        acts = extract_activations(
            lm, rendered, layers=layers, pooling="last", batch_size=batch_size,
            max_length=max_length, add_special_tokens=not templated,
        )  # fmt: skip
        per_layer = {}
        for lay in layers:
            probs = probes[lay].predict_proba(np.asarray(acts.layer(lay), dtype=np.float32))
            pred = probs.argmax(1)
            if name == "none":
                base_probs[lay], base_pred[lay] = probs, pred
            mean = probs.mean(0)
            shift = mean - base_probs[lay].mean(0)
            per_layer[str(lay)] = {
                "accuracy": float((pred == gold).mean()),
                "mean_probs": dict(zip(labels, map(float, mean), strict=True)),
                "shift_from_none": dict(zip(labels, map(float, shift), strict=True)),
                "changed_vs_none": float((pred != base_pred[lay]).mean()),
            }
        out["conditions"][name] = {"system_prompt": system, "layers": per_layer}
    return out
