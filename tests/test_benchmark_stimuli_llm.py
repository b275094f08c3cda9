"""The checkpointed A/B stage, its diagnostics and the content-free calibration of
benchmarks/stimuli_llm.py (the run itself is a benchmark), with a scripted scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench_helpers import load_benchmark
from emoscope.stimuli import load_stimuli, load_task

stimuli_llm = load_benchmark("stimuli_llm")


class BiasedScorer:
    """Label scores with a token prior: ``anger`` +3 on every prompt, the gold label +2 (the
    stimulus EP02 adds nothing); a content-free prompt gets the prior only."""

    name = "scorer"
    model = "scorer"

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold
        self.calls = 0

    def score(self, conversations: Any, choices: list[str]) -> list[np.ndarray]:
        out = []
        for conv in conversations:
            self.calls += 1
            text = conv[-1]["content"].split("Sentence: ")[1].split("\n")[0]
            lab = next((g for s, g in self.gold.items() if text.startswith(s)), None)
            out.append(np.array([-6.0 + 3.0 * (c == "anger") + 2.0 * (c == lab) for c in choices]))
        return out


def test_ab_stage_resumes_and_content_free_calibration_removes_a_label_prior(
    tmp_path: Path,
) -> None:
    task = load_task("emotion")
    gold = {it.prompt.split("Sentence: ")[1]: str(it.answer) for it in task.items}
    scorer = BiasedScorer(gold)
    stimuli = load_stimuli("EP02")
    ckpt = tmp_path / "emotion.jsonl"
    res = stimuli_llm._ab_stage(scorer, task, stimuli, ckpt, float("inf"))
    # Raw scores always pick anger: accuracy is the share of anger items, a constant answer.
    assert res["baseline_score"] == 2 / 14
    diag = res["diagnostics"]["question_0"]
    assert diag["baseline_share_of_most_common_prediction"] == 1.0
    assert diag["baseline_predicted_counts"] == {0: 14}
    assert diag["distinct_baseline_score_rows"] == 7
    calls = scorer.calls
    again = stimuli_llm._ab_stage(scorer, task, stimuli, ckpt, float("inf"))
    assert scorer.calls == calls and again["rows"] == res["rows"]  # all from the checkpoint
    cal = stimuli_llm._content_free(
        scorer, task, stimuli, tmp_path / "cf.json", stimuli_llm._load_jsonl(ckpt)
    )
    assert cal["baseline_score"] == 1.0 and cal["rows"][0]["score"] == 1.0
    assert cal["content_free_loglik"]["baseline"][0] == -3.0
    assert sum(cal["baseline_predicted_counts"].values()) == 14


def test_ab_stage_stops_at_the_deadline_with_nothing_scored(tmp_path: Path) -> None:
    task = load_task("emotion")
    res = stimuli_llm._ab_stage(
        BiasedScorer({}), task, load_stimuli("EP02"), tmp_path / "x.jsonl", 0.0
    )
    assert res["n_items"] == 0 and res["items_scored"] == []


def test_position_prior_check_separates_a_letter_bias_from_a_reading() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(60):
        gold = int(rng.integers(4))
        ll = [-5.0 + 4.0 * (j == 0) + 1.0 * (j == gold) for j in range(4)]  # A bias + signal
        rows.append({"answers": [gold], "loglik": {"baseline": [ll]}})
    out = stimuli_llm.position_prior_check(rows)
    assert out["accuracy_uniform_guess"] == 0.25
    assert out["accuracy_position_prior_removed"] == 1.0  # the bias removed, the signal stays
    biased = -3.0 + 3.0 * (np.arange(4) == 0)  # the A bias, no signal
    noise = [
        {
            "answers": [int(rng.integers(4))],
            "loglik": {"baseline": [list(biased + rng.normal(0, 0.1, 4))]},
        }
        for _ in range(400)
    ]
    assert (
        abs(stimuli_llm.position_prior_check(noise)["accuracy_position_prior_removed"] - 0.25)
        < 0.08
    )
