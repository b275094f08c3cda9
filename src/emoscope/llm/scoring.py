"""Label scoring: the log-likelihood of each allowed answer after a prompt, instead of parsing.

As lm-evaluation-harness scores multiple choice (Gao et al., "A framework for few-shot language
model evaluation"), each choice string is scored by the sum of its tokens' log-probabilities
given the prompt. The prompt is run once and its KV cache shared by all choices, which are
scored together in one batch. Raw label likelihoods carry the model's token priors (a small
model "prefers" some label words whatever the input); :class:`LabelCalibration` removes them by
contextual calibration (Zhao et al., 2021, "Calibrate Before Use": subtract each label's mean
log-likelihood, fitted on a development set) and then applies temperature scaling (Guo et al.,
2017), giving a calibrated distribution over the taxonomy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoscope.errors import EmoscopeError
from emoscope.models import autocast

__all__ = ["LabelCalibration", "choice_token_ids", "score_choices", "softmax"]


def choice_token_ids(tokenizer: Any, choices: Sequence[str], *, plain: bool) -> list[list[int]]:
    """Token ids of each choice as the answer text (a leading space after a plain
    ``Assistant:`` prompt, none after a chat template's assistant header)."""
    out = []
    for c in choices:
        ids = tokenizer((" " + c) if plain else c, add_special_tokens=False)["input_ids"]
        if not ids:
            raise EmoscopeError(f"the choice {c!r} has no tokens")
        out.append([int(i) for i in ids])
    return out


def score_choices(
    model: Any,
    prompt_ids: Sequence[int],
    choice_ids: Sequence[Sequence[int]],
    *,
    bf16: bool = False,
    batch_size: int = 16,
) -> np.ndarray:
    """Sum of log-probabilities of each choice's tokens after ``prompt_ids``.

    One forward pass over the prompt; its KV cache is repeated for each batch of choices.
    Returns a float64 array, one value per choice.
    """
    import torch

    if not prompt_ids:
        raise EmoscopeError("an empty prompt cannot be scored")
    device = next(model.parameters()).device
    scores = np.zeros(len(choice_ids), dtype=np.float64)
    with torch.no_grad(), autocast(bf16, device):
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
        out = model(input_ids=ids, use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        past = out.past_key_values
        n_prompt = len(prompt_ids)
        for start in range(0, len(choice_ids), batch_size):
            chunk = [list(c) for c in choice_ids[start : start + batch_size]]
            lp = [float(first[c[0]]) for c in chunk]
            rest = [c[1:] for c in chunk]
            width = max(len(r) for r in rest)
            if width:
                b = len(chunk)
                pad = 0
                inp = torch.full((b, width), pad, dtype=torch.long, device=device)
                mask = torch.zeros((b, n_prompt + width), dtype=torch.long, device=device)
                mask[:, :n_prompt] = 1
                # The input of position j is choice token j (its first token is scored by the
                # prompt's last logits); the logits at j score token j + 1.
                for k, c in enumerate(chunk):
                    toks = c[:-1][:width]
                    inp[k, : len(toks)] = torch.tensor(toks, dtype=torch.long)
                    mask[k, n_prompt : n_prompt + len(toks)] = 1
                cache = copy.deepcopy(past)
                cache.batch_repeat_interleave(b)
                pos = torch.arange(n_prompt, n_prompt + width, device=device).unsqueeze(0)
                logits = model(
                    input_ids=inp,
                    attention_mask=mask,
                    past_key_values=cache,
                    position_ids=pos.expand(b, -1),
                    use_cache=True,
                ).logits.float()
                logp = torch.log_softmax(logits, dim=-1)
                for k, r in enumerate(rest):
                    for j, tok in enumerate(r):
                        lp[k] += float(logp[k, j, tok])
            scores[start : start + len(chunk)] = lp
    return scores


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of log-scores."""
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


@dataclass
class LabelCalibration:
    """Contextual-calibration prior and temperature for label log-likelihoods.

    ``prior`` holds, per label, the mean log-likelihood on a development set (subtracted);
    ``temperature`` divides the corrected scores before the softmax. The identity (no prior,
    temperature 1) gives the raw likelihoods renormalised over the labels.
    """

    labels: tuple[str, ...]
    prior: dict[str, float] = field(default_factory=dict)
    temperature: float = 1.0
    n_fit: int = 0

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated label distribution(s) of raw log-likelihood scores (..., n_labels)."""
        prior = np.array([self.prior.get(lab, 0.0) for lab in self.labels])
        return softmax((np.asarray(scores, dtype=np.float64) - prior) / self.temperature)

    @classmethod
    def fit(
        cls, labels: Sequence[str], scores: np.ndarray, gold: Sequence[str] | None = None
    ) -> LabelCalibration:
        """The prior from dev ``scores`` (n, n_labels); with ``gold``, also the temperature
        that minimises the negative log-likelihood of the gold labels (grid search)."""
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != len(labels) or len(s) == 0:
            raise EmoscopeError(f"expected scores of shape (n, {len(labels)}), got {s.shape}")
        cal = cls(
            tuple(labels), dict(zip(labels, s.mean(axis=0).tolist(), strict=True)), 1.0, len(s)
        )
        if gold is not None:
            idx = {lab: i for i, lab in enumerate(labels)}
            rows = [(i, idx[g]) for i, g in enumerate(gold) if g in idx]
            if rows:
                r = np.array([i for i, _ in rows])
                c = np.array([j for _, j in rows])
                best = (math.inf, 1.0)
                for t in np.exp(np.linspace(math.log(0.05), math.log(20.0), 121)):
                    cal.temperature = float(t)
                    p = cal.probabilities(s[r])[np.arange(len(r)), c]
                    nll = float(-np.log(np.clip(p, 1e-12, None)).mean())
                    best = min(best, (nll, float(t)))
                cal.temperature = best[1]
        return cal

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return {
            "labels": list(self.labels),
            "prior": self.prior,
            "temperature": self.temperature,
            "n_fit": self.n_fit,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelCalibration:
        """The inverse of :meth:`to_dict`."""
        return cls(
            tuple(d["labels"]),
            {str(k): float(v) for k, v in d.get("prior", {}).items()},
            float(d.get("temperature", 1.0)),
            int(d.get("n_fit", 0)),
        )
