"""Label scoring of the stimulus tasks on a tiny random Llama (real from_pretrained path):
the shared-prefix KV cache, EmoBench and built-in multiple choice, the A/B harness in label
mode, the EQ-Bench expected-value variant and the error for backends that cannot score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoscope.errors import EmoscopeError
from emoscope.llm.base import Generation
from emoscope.llm.hf import HFBackend
from emoscope.llm.scoring import score_prompts
from emoscope.stats import holm_adjust, mcnemar_exact
from emoscope.stimuli import (
    emobench_questions,
    eqbench_intensity_distributions,
    expected_intensities,
    label_outcomes,
    label_predictions,
    load_stimuli,
    load_task,
    run_ab,
    run_emobench,
    run_eqbench,
    score_questions,
)


@pytest.fixture(scope="module")
def backend(tiny_llama: Path) -> HFBackend:
    return HFBackend(str(tiny_llama), device="cpu", batch_size=32)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    (tmp_path / "emobench").mkdir()
    eu = [
        {"qid": str(i), "language": "en", "coarse_category": cat, "finegrained_category": "x",
         "scenario": f"Ann found {i} letters.", "subject": "Ann",
         "emotion_choices": ["Joy", "Anger", "Fear"], "emotion_label": "Anger",
         "cause_choices": ["A gift", "The rain"], "cause_label": "The rain"}
        for i, cat in enumerate(["complex", "personal", "personal"], start=1)
    ]  # fmt: skip
    ea = [
        {"qid": "1", "language": "en", "category": "Personal-Others", "question type": "Action",
         "scenario": "Bo is sad.", "subject": "Bo", "choices": ["Wait", "Talk", "Leave"],
         "label": "Talk"}
    ]  # fmt: skip
    (tmp_path / "emobench" / "EU.jsonl").write_text("\n".join(json.dumps(r) for r in eu) + "\n")
    (tmp_path / "emobench" / "EA.jsonl").write_text("\n".join(json.dumps(r) for r in ea) + "\n")
    (tmp_path / "eqbench").mkdir()
    prompt = (
        "Your task is to predict the likely emotional responses of a character in this "
        "dialogue:\n\nA: hi\nB: bye\n[End dialogue]\n\nAt the end of this dialogue, A would "
        "feel...\nJoy\nFear\nAnger\nSadness\n\nGive each of these possible emotions a score "
        "from 0-10 for the relative intensity that they are likely to be feeling each.\n\n"
        "You must output in the following format:\n\nJoy: <score>\nFear: <score>\n"
        "Anger: <score>\nSadness: <score>\n"
    )
    names = {"emotion1": "Joy", "emotion2": "Fear", "emotion3": "Anger", "emotion4": "Sadness"}
    ref = names | {"emotion1_score": 0, "emotion2_score": 2, "emotion3_score": 7}
    ref["emotion4_score"] = 4
    qs = {"1": {"prompt": prompt, "reference_answer": ref, "reference_answer_fullscale": ref}}
    (tmp_path / "eqbench" / "eq_bench_v2_questions_171.json").write_text(json.dumps(qs))
    return tmp_path


def test_shared_prefix_equals_separate_passes(backend: HFBackend) -> None:
    tok = backend.tokenizer
    head = tok("neutral joy surprise anger sadness disgust fear " * 4)["input_ids"]
    tails = ["joy", "anger sadness fear", "neutral", "surprise disgust joy anger neutral", "fear"]
    prompts = [head + tok(" " + t)["input_ids"] for t in tails]
    choices = [tok(c, add_special_tokens=False)["input_ids"] for c in ("joy", "anger fear joy")]
    assert len(head) >= 16 and len(choices[1]) > 1
    shared = score_prompts(backend.lm, prompts, choices, group_size=2)
    alone = np.array([score_prompts(backend.lm, [p], choices)[0] for p in prompts])
    assert np.allclose(shared, alone, atol=1e-4)
    # turned off, the left-padded batch gives the same numbers too
    off = score_prompts(backend.lm, prompts, choices, min_shared_prefix=10**6)
    assert np.allclose(off, alone, atol=1e-4)


def test_emobench_questions_letters_and_text(bench: Path) -> None:
    from emoscope.datasets import load_emobench

    eu = load_emobench("EU", bench, "en")[0]
    q1, q2 = emobench_questions(eu)
    assert q1.choices == ("A", "B", "C") and q1.answer == 1 and q2.answer == 1
    assert "B) Anger" in q1.prompt and "Why would Ann" in q2.prompt and "letter" in q1.system
    t1, _ = emobench_questions(eu, "text")
    assert t1.choices == ("Joy", "Anger", "Fear") and t1.answer == 1
    stim = load_stimuli("EP02")[0]
    assert q1.messages(stim)[-1]["content"].endswith(stim.text)
    with pytest.raises(EmoscopeError, match="presentation"):
        emobench_questions(eu, "json")


def test_emobench_label_scoring_is_argmax_of_scores(backend: HFBackend, bench: Path) -> None:
    from emoscope.datasets import load_emobench

    res = run_emobench(backend, "EU", root=bench, scoring="label")
    expected = []
    for item in load_emobench("EU", bench, "en"):
        ok = True
        for q in emobench_questions(item):
            (row,) = backend.score([q.messages()], list(q.choices))
            ok &= int(np.argmax(row)) == q.answer
        expected.append(ok)
    assert res["correct"] == expected and res["scoring"] == "label"
    assert res["accuracy"]["Overall"] == pytest.approx(np.mean(expected))
    assert res["n"] == {"complex": 1, "personal": 2, "Overall": 3}


def test_label_ab_rows_match_outcomes(backend: HFBackend) -> None:
    task = load_task("emotion")
    stimuli = load_stimuli("EP01,NP01")
    res = run_ab(backend, task, stimuli, scoring="label", n_boot=200)
    out = label_outcomes(backend, task, stimuli)
    assert res.baseline_score == pytest.approx(np.mean(out["baseline"]))
    base = np.array(out["baseline"])
    for row, s in zip(res.rows, stimuli, strict=True):
        other = np.array(out[s.id])
        assert row.score == pytest.approx(other.mean())
        b, c = int(((base == 1) & (other == 0)).sum()), int(((base == 0) & (other == 1)).sum())
        assert (row.b, row.c) == (b, c) and row.p_value == pytest.approx(mcnemar_exact(b, c))
        assert row.p_holm is not None and row.p_holm >= row.p_value
    # each built-in question's prediction is the argmax of the label words' likelihoods
    item = task.items[0]
    (q,) = task.questions(item)  # type: ignore[misc]
    (r,) = score_questions(backend, [q])[0]
    (row,) = backend.score([item.messages()], list(q.choices))
    assert r.predicted == int(np.argmax(row)) and r.correct == (r.predicted == q.answer)
    assert out["baseline"][0] == float(r.correct)


def test_label_predictions_give_each_questions_choice(backend: HFBackend, bench: Path) -> None:
    task = load_task("emobench-eu", root=bench)
    stimuli = load_stimuli("EP02")
    preds = label_predictions(backend, task, stimuli)
    out = label_outcomes(backend, task, stimuli)
    assert set(preds) == {"baseline", "EP02"}
    for name in preds:
        assert len(preds[name]) == len(task.items)
        assert out[name] == [float(all(q.correct for q in item)) for item in preds[name]]
    item = task.items[0]
    qs = task.questions(item)  # type: ignore[misc]
    assert len(preds["baseline"][0]) == len(qs) == 2
    for q, r in zip(qs, preds["EP02"][0], strict=True):
        (row,) = backend.score([q.messages(stimuli[0])], list(q.choices))
        assert r.predicted == int(np.argmax(row)) and r.condition == "EP02"
        assert r.loglik == pytest.approx(tuple(row), abs=1e-4)


def test_label_scoring_errors(bench: Path) -> None:
    class TextOnly:
        name = "openai"
        model = "m"

        def generate(self, conversations: list, **_: object) -> list[Generation]:
            return [Generation("A") for _ in conversations]

    with pytest.raises(EmoscopeError, match="label scoring needs a backend that scores"):
        run_ab(TextOnly(), "emotion", "EP01", scoring="label")
    with pytest.raises(EmoscopeError, match="label scoring needs a backend that scores"):
        run_eqbench(TextOnly(), root=bench, scoring="expected")
    with pytest.raises(EmoscopeError, match="not multiple choice"):
        label_outcomes(_Scorer(), load_task("arithmetic"), [])
    with pytest.raises(EmoscopeError, match="label scoring needs a backend that scores"):
        label_predictions(TextOnly(), load_task("emotion"), [])
    with pytest.raises(EmoscopeError, match="HEART"):
        run_ab(_Scorer(), "emotion", "EP01", scoring="label", heart=1)


class _Scorer:
    name = "scorer"
    model = "scorer"

    def score(self, conversations: list, choices: list) -> list[np.ndarray]:
        return [np.zeros(len(choices)) for _ in conversations]


def test_eqbench_expected_value_variant(backend: HFBackend, bench: Path) -> None:
    from emoscope.datasets import load_eqbench
    from emoscope.stimuli.eqbench import eqbench_prompt, eqbench_question_score

    item = load_eqbench(bench)[0]
    (dists,) = eqbench_intensity_distributions(backend, [item])
    conv = [{"role": "user", "content": eqbench_prompt(item.prompt)}]
    (row,) = backend.score([conv], [f"Anger: {v}\n" for v in range(11)])
    p = np.exp(row - row.max())
    assert np.allclose(dists["Anger"], p / p.sum(), atol=1e-6)
    ev = expected_intensities(dists)
    assert set(ev) == {"Joy", "Fear", "Anger", "Sadness"} and all(0 <= v <= 10 for v in ev.values())
    res = run_eqbench(backend, root=bench, scoring="expected")
    assert res["parseable"] == 1 and res["scoring"] == "expected"
    assert res["score"] == pytest.approx(10 * eqbench_question_score(item.reference, ev))
    with pytest.raises(EmoscopeError, match="revision"):
        run_eqbench(backend, root=bench, scoring="expected", revise=True)


def test_holm_adjust() -> None:
    assert holm_adjust([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
