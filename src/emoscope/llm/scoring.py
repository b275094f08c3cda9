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

__all__ = ["LabelCalibration", "choice_token_ids", "score_choices", "score_prompts", "softmax"]


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
    Returns a float64 array, one value per choice (see :func:`score_prompts`).
    """
    return score_prompts(model, [prompt_ids], choice_ids, bf16=bf16, batch_size=batch_size)[0]


def score_prompts(
    model: Any,
    prompts: Sequence[Sequence[int]],
    choice_ids: Sequence[Sequence[int]],
    *,
    bf16: bool = False,
    batch_size: int = 64,
    min_shared_prefix: int = 16,
    group_size: int = 8,
) -> np.ndarray:
    """Choice log-likelihoods after each of several prompts, shape (n_prompts, n_choices).

    The prompts run together in one left-padded forward pass (only the last position's logits
    are computed), which scores every choice's first token. Choices longer than one token then
    continue from the prompts' KV cache, repeated once per (prompt, choice) pair, in batches of
    ``batch_size`` rows. On a CPU a forward pass of a small model costs mostly the reading of its
    weights, so scoring several prompts at once is much cheaper than one at a time.

    When the prompts begin with the same tokens (at least ``min_shared_prefix`` of them, e.g.
    one question asked with different stimuli appended), that prefix runs once and its KV cache
    is shared by every prompt, and the rest runs in groups of ``group_size`` prompts of similar
    length; the scores are those of full passes over each prompt.
    """
    import torch

    if any(not p for p in prompts):
        raise EmoscopeError("an empty prompt cannot be scored")
    scores = np.zeros((len(prompts), len(choice_ids)), dtype=np.float64)
    if not prompts:
        return scores
    device = next(model.parameters()).device
    n = len(prompts)
    # Tokens shared by every prompt (e.g. one question asked with different stimuli appended)
    # run once; at least one token of each prompt is left for the per-prompt pass.
    shared = min(_common_prefix_length(prompts), min(len(p) for p in prompts) - 1)
    if n < 2 or shared < min_shared_prefix:
        shared = 0
    with torch.no_grad(), autocast(bf16, device):
        head = None
        groups = [list(range(n))]
        if shared:
            ids = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
            head = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
            # After the shared prefix, prompts of similar length run together (less padding).
            order = sorted(range(n), key=lambda i: len(prompts[i]))
            groups = [order[k : k + group_size] for k in range(0, n, group_size)]
        for g in groups:
            scores[g] = _score_rows(
                model, [prompts[i] for i in g], choice_ids, shared, head, batch_size, device
            )
    return scores


def _score_rows(
    model: Any,
    prompts: Sequence[Sequence[int]],
    choice_ids: Sequence[Sequence[int]],
    shared: int,
    head: Any,
    batch_size: int,
    device: Any,
) -> np.ndarray:
    """:func:`score_prompts` for prompts whose first ``shared`` tokens are in ``head`` (a KV
    cache of batch 1, copied, not changed); called under ``no_grad``."""
    import torch

    n = len(prompts)
    scores = np.zeros((n, len(choice_ids)), dtype=np.float64)
    own = [list(p[shared:]) for p in prompts]
    width_r = max(len(r) for r in own)
    width_p = shared + width_r
    ids = torch.zeros((n, width_r), dtype=torch.long, device=device)
    pmask = torch.zeros((n, width_p), dtype=torch.long, device=device)
    pmask[:, :shared] = 1
    for i, r in enumerate(own):
        # Left padding of each prompt's own part: the pad sits after the shared prefix, masked
        # out, so every prompt's last token is in the last column.
        ids[i, width_r - len(r) :] = torch.tensor(r, dtype=torch.long)
        pmask[i, width_p - len(r) :] = 1
    lengths = [len(p) for p in prompts]
    past = None
    if head is not None:
        past = copy.deepcopy(head)
        past.reorder_cache(torch.zeros(n, dtype=torch.long, device=device))
    out = model(
        input_ids=ids,
        attention_mask=pmask,
        position_ids=(pmask.cumsum(-1) - 1).clamp(min=0)[:, shared:],
        past_key_values=past,
        use_cache=True,
        logits_to_keep=1,
    )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    firsts = torch.tensor([c[0] for c in choice_ids], dtype=torch.long, device=device)
    scores += first[:, firsts].double().cpu().numpy()
    past = out.past_key_values
    # (prompt, choice) rows whose choice has tokens after the first.
    rows = [(i, j) for i in range(n) for j, c in enumerate(choice_ids) if len(c) > 1]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        rest = [list(choice_ids[j][1:]) for _, j in chunk]
        width = max(len(r) for r in rest)
        b = len(chunk)
        inp = torch.zeros((b, width), dtype=torch.long, device=device)
        mask = torch.zeros((b, width_p + width), dtype=torch.long, device=device)
        pos = torch.zeros((b, width), dtype=torch.long, device=device)
        for k, (i, j) in enumerate(chunk):
            # The input of position t is choice token t (its first token was scored by the
            # prompt's last logits); the logits at t score token t + 1.
            toks = list(choice_ids[j][:-1])
            inp[k, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            mask[k, :width_p] = pmask[i]
            mask[k, width_p : width_p + len(toks)] = 1
            pos[k] = torch.arange(lengths[i], lengths[i] + width)
        cache = copy.deepcopy(past)
        cache.reorder_cache(torch.tensor([i for i, _ in chunk], device=device))
        logp = torch.log_softmax(
            model(
                input_ids=inp,
                attention_mask=mask,
                past_key_values=cache,
                position_ids=pos,
                use_cache=True,
            ).logits.float(),
            dim=-1,
        )
        for k, ((i, j), r) in enumerate(zip(chunk, rest, strict=True)):
            scores[i, j] += float(sum(logp[k, t, tok] for t, tok in enumerate(r)))
    return scores


def _common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for i in range(n):
        t = first[i]
        if any(p[i] != t for p in prompts):
            return i
    return n


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

    Contextual calibration makes every label equally likely a priori. Where the labels are not
    (MELD is 48 % neutral), ``log_label_prior`` (the log frequency of each gold label on the
    development set) is added back after the temperature, so that the corrected scores act as
    likelihoods and the answer is the Bayes posterior.
    """

    labels: tuple[str, ...]
    prior: dict[str, float] = field(default_factory=dict)
    temperature: float = 1.0
    n_fit: int = 0
    log_label_prior: dict[str, float] = field(default_factory=dict)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated label distribution(s) of raw log-likelihood scores (..., n_labels)."""
        prior = np.array([self.prior.get(lab, 0.0) for lab in self.labels])
        label_prior = np.array([self.log_label_prior.get(lab, 0.0) for lab in self.labels])
        z = (np.asarray(scores, dtype=np.float64) - prior) / self.temperature
        return softmax(z + label_prior)

    @classmethod
    def fit(
        cls,
        labels: Sequence[str],
        scores: np.ndarray,
        gold: Sequence[str] | None = None,
        *,
        label_prior: bool = False,
    ) -> LabelCalibration:
        """The prior from dev ``scores`` (n, n_labels); with ``gold``, also the temperature
        that minimises the negative log-likelihood of the gold labels (grid search), and with
        ``label_prior`` the gold labels' log frequencies (add-one smoothed) added back."""
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != len(labels) or len(s) == 0:
            raise EmoscopeError(f"expected scores of shape (n, {len(labels)}), got {s.shape}")
        if label_prior and gold is None:
            raise EmoscopeError("label_prior needs the gold labels of the development set")
        cal = cls(
            tuple(labels), dict(zip(labels, s.mean(axis=0).tolist(), strict=True)), 1.0, len(s)
        )
        if gold is not None:
            idx = {lab: i for i, lab in enumerate(labels)}
            rows = [(i, idx[g]) for i, g in enumerate(gold) if g in idx]
            if label_prior:
                counts = np.ones(len(labels))
                for _, j in rows:
                    counts[j] += 1
                cal.log_label_prior = dict(
                    zip(labels, np.log(counts / counts.sum()).tolist(), strict=True)
                )
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
            "log_label_prior": self.log_label_prior,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelCalibration:
        """The inverse of :meth:`to_dict`."""
        return cls(
            tuple(d["labels"]),
            {str(k): float(v) for k, v in d.get("prior", {}).items()},
            float(d.get("temperature", 1.0)),
            int(d.get("n_fit", 0)),
            {str(k): float(v) for k, v in d.get("log_label_prior", {}).items()},
        )
