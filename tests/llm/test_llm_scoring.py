"""Label scoring: choice log-likelihoods with a shared KV cache, and their calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscope.errors import EmoscopeError
from emoscope.llm.hf import HFBackend
from emoscope.llm.scoring import LabelCalibration, score_choices, score_prompts
from emoscope.models import encode_prompt


def _full_forward_logprob(model: object, prompt: list[int], choice: list[int]) -> float:
    import torch

    ids = torch.tensor([prompt + choice])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # type: ignore[operator]
    return float(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(choice)))


def test_cached_scores_equal_full_forward_passes(tiny_llama: Path) -> None:
    backend = HFBackend(str(tiny_llama), device="cpu")
    conv = [{"role": "user", "content": "joy or anger?"}]
    choices = ["joy", "anger", "neutral", "surprise disgust"]
    scores = backend.score([conv], choices)[0]
    prompt = encode_prompt(backend.tokenizer, backend.render(conv))
    for c, s in zip(choices, scores, strict=True):
        ids = backend.tokenizer(c, add_special_tokens=False)["input_ids"]
        assert s == pytest.approx(_full_forward_logprob(backend.lm, prompt, ids), abs=1e-4)
    # batching choices two at a time gives the same numbers
    ids = [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
    again = score_choices(backend.lm, prompt, ids, batch_size=2)
    assert np.allclose(again, scores, atol=1e-4)


def test_calibration_removes_a_label_prior() -> None:
    labels = ("a", "b", "c")
    rng = np.random.default_rng(0)
    gold_idx = rng.integers(0, 3, size=300)
    signal = np.eye(3)[gold_idx] * 2.0
    scores = signal + np.array([0.0, 5.0, -3.0]) + rng.normal(0, 0.5, (300, 3))
    assert (scores.argmax(1) == 1).mean() > 0.9  # raw scores: the prior wins
    cal = LabelCalibration.fit(labels, scores, [labels[i] for i in gold_idx])
    p = cal.probabilities(scores)
    assert np.allclose(p.sum(1), 1.0)
    assert (p.argmax(1) == gold_idx).mean() > 0.9
    assert LabelCalibration.from_dict(cal.to_dict()) == cal
    with pytest.raises(EmoscopeError, match="shape"):
        LabelCalibration.fit(labels, scores[:, :2])


def test_label_prior_restores_an_imbalanced_gold_distribution() -> None:
    """Contextual calibration alone treats labels as equally likely; with 80 % 'a' and a weak
    signal it predicts too few 'a's, and adding the dev label prior back fixes that."""
    labels = ("a", "b", "c")
    rng = np.random.default_rng(1)
    gold_idx = rng.choice(3, size=2000, p=[0.8, 0.1, 0.1])
    scores = np.eye(3)[gold_idx] * 1.0 + np.array([0.0, 3.0, -2.0]) + rng.normal(0, 1.0, (2000, 3))
    gold = [labels[i] for i in gold_idx]
    dev, test = slice(0, 1000), slice(1000, 2000)
    uniform = LabelCalibration.fit(labels, scores[dev], gold[dev])
    bayes = LabelCalibration.fit(labels, scores[dev], gold[dev], label_prior=True)
    acc = {
        name: float((cal.probabilities(scores[test]).argmax(1) == gold_idx[test]).mean())
        for name, cal in (("uniform", uniform), ("bayes", bayes))
    }
    assert acc["bayes"] > acc["uniform"] + 0.1
    assert bayes.log_label_prior["a"] == pytest.approx(np.log((gold[dev].count("a") + 1) / 1003))
    assert LabelCalibration.from_dict(bayes.to_dict()) == bayes
    with pytest.raises(EmoscopeError, match="gold labels"):
        LabelCalibration.fit(labels, scores, label_prior=True)


def test_prompts_scored_together_equal_one_at_a_time(tiny_llama: Path) -> None:
    backend = HFBackend(str(tiny_llama), device="cpu")
    convs = [
        [{"role": "user", "content": "joy or anger?"}],
        [{"role": "user", "content": "A much longer question, padded on the left: joy or not?"}],
        [{"role": "user", "content": "x"}],
    ]
    choices = ["joy", "anger", "surprise disgust", "neutral"]
    ids = [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
    prompts = [encode_prompt(backend.tokenizer, backend.render(c)) for c in convs]
    together = score_prompts(backend.lm, prompts, ids, batch_size=3)
    assert together.shape == (3, 4)
    for p, row in zip(prompts, together, strict=True):
        assert np.allclose(row, score_choices(backend.lm, p, ids), atol=1e-4)
    backend.batch_size = 2
    assert np.allclose(np.stack(backend.score(convs, choices)), together, atol=1e-4)
