"""Tests of emoscope.stimuli: stimulus data, statistics, official benchmark scoring, harness."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from emoscope.cli_inside import register
from emoscope.datasets.emobench import EmoBenchItem
from emoscope.errors import EmoscopeError
from emoscope.llm.base import Generation
from emoscope.stimuli import (
    apply_stimulus,
    emobench_messages,
    eqbench_benchmark_score,
    eqbench_prompt,
    eqbench_question_score,
    eqbench_question_score_v1,
    generate_texts,
    heart_rounds,
    load_backend,
    load_stimuli,
    load_task,
    mcnemar_exact,
    parse_emobench_answer,
    parse_eqbench_answer,
    run_ab,
    run_emobench,
    run_eqbench,
    score_emobench,
    significance_marker,
    stimulus_info,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


class ScriptedBackend:
    """A chat backend answering with a function of the conversation (for harness logic)."""

    name = "scripted"
    model = "scripted"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[list[dict[str, str]]] = []
        self.options: list[dict[str, Any]] = []

    def generate(
        self, conversations: Any, *, max_new_tokens: int = 64, temperature: float = 0.0
    ) -> list[Generation]:
        self.options.append({"max_new_tokens": max_new_tokens, "temperature": temperature})
        self.seen += [list(c) for c in conversations]
        return [Generation(self.answer(c)) for c in conversations]


def make_scripted(model: str | None = None) -> ScriptedBackend:
    """Factory for the CLI: answers sentiment items right only when EP02 is in the prompt."""

    def answer(conv: list[dict[str, str]]) -> str:
        text = conv[-1]["content"]
        if "important to my career" in text:
            return (
                "positive" if any(w in text for w in ("best", "great", "wonderful")) else "negative"
            )
        return "positive"

    return ScriptedBackend(answer)


# --------------------------------------------------------------------------------------------
# Stimuli


def test_stimulus_sets() -> None:
    ep = load_stimuli("emotionprompt")
    npr = load_stimuli("negativeprompt")
    assert [s.id for s in ep] == [f"EP{i:02d}" for i in range(1, 12)]
    assert [s.id for s in npr] == [f"NP{i:02d}" for i in range(1, 11)]
    assert ep[1].text == "This is very important to my career."
    assert npr[0].text == "You've never been particularly good at this, have you?"
    # Numbered as in the paper's table (the authors' code list has NP04-NP07 in another order).
    assert npr[3].text == "Perhaps this task is just beyond your skill set."
    assert npr[5].text == "Everyone else managed to do it; why can't you?"
    assert ep[5].text.startswith("Provide your answer and a confidence score between 0-1")
    assert "2307.11760" in ep[0].citation and "2405.02814" in npr[0].citation
    assert len(load_stimuli("all")) == 21 and len(load_stimuli(None)) == 21
    assert [s.id for s in load_stimuli("ep03-EP05,NP10,EP04")] == ["EP03", "EP04", "EP05", "NP10"]
    for bad in ("EP12", "XX01", "EP01-EP13", "cheerful"):
        with pytest.raises(EmoscopeError):
            load_stimuli(bad)
    info = stimulus_info()
    assert set(info["heart"]["feedback"]) == {
        "anger",
        "disgust",
        "fear",
        "joy",
        "sadness",
        "surprise",
    }


def test_apply_stimulus() -> None:
    s = load_stimuli("EP02")[0]
    assert (
        apply_stimulus("Sum 2 and 3.  ", s) == "Sum 2 and 3. This is very important to my career."
    )
    assert apply_stimulus("Q", "Hi.", "prepend") == "Hi. Q"
    assert apply_stimulus("Q", None) == "Q"
    with pytest.raises(EmoscopeError):
        apply_stimulus("Q", s, "middle")


# --------------------------------------------------------------------------------------------
# Statistics


# --------------------------------------------------------------------------------------------
# EQ-Bench v2

REF = {"Remorseful": 2.0, "Indifferent": 3.0, "Affectionate": 0.0, "Annoyed": 5.0}


def test_eqbench_v2_question_scores_hand_computed() -> None:
    assert (
        eqbench_question_score(
            REF, {"Remorseful": "2", "Indifferent": "3", "Affectionate": "0", "Annoyed": "5"}
        )
        == 10.0
    )
    # One emotion off by 1: cost 6.5 / (1 + e^{-1.2 * (1 - 4)}) = 6.5 / (1 + e^{3.6}) = 0.172875...
    cost1 = 6.5 / (1 + math.exp(3.6))
    got = eqbench_question_score(
        REF, {"remorseful": 3, "INDIFFERENT": 3, "Affectionate": 0, "Annoyed": 5}
    )
    assert got == pytest.approx(10 - 0.7477 * cost1) and got == pytest.approx(9.870737, abs=1e-6)
    # Off by 7 (> 5) costs 7; off by 5 costs 6.5 / (1 + e^{-1.2}) = 6.5 / 1.301194 = 4.995413
    cost5 = 6.5 / (1 + math.exp(-1.2))
    got = eqbench_question_score(
        REF, {"Remorseful": 9, "Indifferent": 8, "Affectionate": 0, "Annoyed": 5}
    )
    assert got == pytest.approx(10 - 0.7477 * (7 + cost5))
    assert got == pytest.approx(10 - 0.7477 * 11.995413, abs=1e-5)
    # Not four pairs, or not the four reference emotions: the question does not count.
    assert eqbench_question_score(REF, {"Remorseful": 2, "Indifferent": 3, "Annoyed": 5}) is None
    assert (
        eqbench_question_score(REF, {"Remorseful": 2, "Indifferent": 3, "Happy": 0, "Annoyed": 5})
        is None
    )


def test_eqbench_v1_normalises() -> None:
    # Answers doubled: rescaled to sum to 10 they equal the reference, score 10.
    assert eqbench_question_score_v1(
        REF, {"Remorseful": 4, "Indifferent": 6, "Affectionate": 0, "Annoyed": 10}
    ) == pytest.approx(10.0)
    # (5, 5, 0, 0) -> rescaled (5, 5, 0, 0): 10 - (3 + 2 + 0 + 5) = 0
    assert eqbench_question_score_v1(
        REF, {"Remorseful": 5, "Indifferent": 5, "Affectionate": 0, "Annoyed": 0}
    ) == pytest.approx(0.0)
    assert (
        eqbench_question_score_v1(
            REF, {"Remorseful": 0, "Indifferent": 0, "Affectionate": 0, "Annoyed": 0}
        )
        is None
    )


def test_eqbench_parse_and_benchmark_score() -> None:
    text = "**Remorseful**: 2\nIndifferent: 3\n# Affectionate: 0\nAnnoyed: 5"
    first, rev = parse_eqbench_answer(text)
    assert first == {"Remorseful": "2", "Indifferent": "3", "Affectionate": "0", "Annoyed": "5"}
    assert rev == {}
    revised_text = (
        "First pass scores:\nRemorseful: 1\nIndifferent: 1\nAffectionate: 1\nAnnoyed: 1\n"
        "Critique: too flat\nRevised scores:\nRemorseful: 2\nIndifferent: 3\nAffectionate: 0\n"
        "Annoyed: 5\n"
    )
    first, rev = parse_eqbench_answer(revised_text, revise=True)
    assert first["Annoyed"] == "1" and rev["Annoyed"] == "5"
    res = eqbench_benchmark_score([10.0, 5.0, None])
    assert res["score"] == pytest.approx(75.0) and res["parseable"] == 2 and res["n_questions"] == 3
    # Revised pass used when at least as good and parsed at least 95% as often.
    both = eqbench_benchmark_score([5.0, 5.0], [6.0, 6.0])
    assert both["used"] == "revised" and both["score"] == pytest.approx(60.0)
    fewer = eqbench_benchmark_score([5.0] * 20, [9.0] * 18 + [None, None])
    assert fewer["used"] == "first_pass" and fewer["score"] == pytest.approx(50.0)
    assert eqbench_benchmark_score([None])["score"] == 0.0


def _eqbench_prompt_text() -> str:
    return (
        "\nYour task is to predict the likely emotional responses of a character in this "
        "dialogue:\n\nA: hi\nB: bye\n[End dialogue]\n\nAt the end of this dialogue, A would "
        "feel...\nRemorseful\nIndifferent\nAffectionate\nAnnoyed\n\nGive each of these possible "
        "emotions a score from 0-10 for the relative intensity that they are likely to be "
        "feeling each. Then critique your answer by thinking it through step by step. Finally, "
        "give your revised scores.\n\nYou must output in the following format, including "
        "headings (of course, you should give your own scores), with no additional "
        "commentary:\n\nFirst pass scores:\nRemorseful: <score>\nIndifferent: <score>\n"
        "Affectionate: <score>\nAnnoyed: <score>\n\nCritique: <your critique here>\n\n"
        "Revised scores:\nRemorseful: <revised score>\nIndifferent: <revised score>\n"
        "Affectionate: <revised score>\nAnnoyed: <revised score>\n\n[End of answer]\n\n"
        "Remember: zero is a valid score, meaning they are likely not feeling that emotion. You "
        "must score at least one emotion > 0.\n"
    )


def test_eqbench_prompt_removes_revision_instructions() -> None:
    p = eqbench_prompt(_eqbench_prompt_text())
    assert "critique" not in p.lower() and "Revised scores" not in p and "First pass" not in p
    assert "Remorseful: <score>" in p and p.endswith("\nYour answer:\n")
    assert "[End of answer]" in p
    assert eqbench_prompt(_eqbench_prompt_text(), revise=True) == _eqbench_prompt_text()


@pytest.fixture
def bench_root(tmp_path: Path) -> Path:
    """Small EQ-Bench and EmoBench files in the real formats."""
    (tmp_path / "eqbench").mkdir()
    questions = {
        str(i): {
            "prompt": _eqbench_prompt_text(),
            "reference_answer": {"emotion1": "Remorseful", "emotion2": "Indifferent",
                                 "emotion3": "Affectionate", "emotion4": "Annoyed",
                                 "emotion1_score": 2, "emotion2_score": 3, "emotion3_score": 0,
                                 "emotion4_score": 5},
            "reference_answer_fullscale": {"emotion1": "Remorseful", "emotion2": "Indifferent",
                                           "emotion3": "Affectionate", "emotion4": "Annoyed",
                                           "emotion1_score": 0, "emotion2_score": "6",
                                           "emotion3_score": 0, "emotion4_score": "7"},
        }
        for i in (1, 2, 3)
    }  # fmt: skip
    (tmp_path / "eqbench" / "eq_bench_v2_questions_171.json").write_text(json.dumps(questions))
    (tmp_path / "emobench").mkdir()
    eu = [
        {"qid": str(i), "language": "en", "coarse_category": cat, "finegrained_category": "x",
         "scenario": f"Scenario {i}.", "subject": "Ann", "emotion_choices": ["Joy", "Anger"],
         "emotion_label": "Joy", "cause_choices": ["Gift", "Rain", "Noise"], "cause_label": "Rain"}
        for i, cat in enumerate(["complex", "complex", "personal"], start=1)
    ]  # fmt: skip
    ea = [
        {"qid": "1", "language": "en", "category": "Personal-Others", "question type": "Action",
         "scenario": "S.", "subject": "Bo", "choices": ["Wait", "Talk", "Leave"], "label": "Talk"}
    ]  # fmt: skip
    (tmp_path / "emobench" / "EU.jsonl").write_text("\n".join(json.dumps(r) for r in eu) + "\n")
    (tmp_path / "emobench" / "EA.jsonl").write_text("\n".join(json.dumps(r) for r in ea) + "\n")
    return tmp_path


def test_run_eqbench_official_score(bench_root: Path) -> None:
    answers = iter(
        [
            "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7",  # perfect: 10
            "Remorseful: 1\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7",  # off by 1
            "I cannot say.",  # unparsable: not counted
        ]
    )
    backend = ScriptedBackend(lambda _c: next(answers))
    res = run_eqbench(backend, root=bench_root, batch_size=2)
    q2 = 10 - 0.7477 * 6.5 / (1 + math.exp(3.6))
    assert res["question_scores"] == [10.0, pytest.approx(q2), None]
    assert res["score"] == pytest.approx(100 * (10 + q2) / 2 / 10)
    assert res["parseable"] == 2 and res["version"] == "v2"
    assert backend.options[0]["max_new_tokens"] == 60
    assert backend.seen[0][0]["content"].endswith("Your answer:\n")


@pytest.mark.skipif(not (SHARED / "eqbench").is_dir(), reason="EQ-Bench data not present")
def test_eqbench_real_questions_reference_answers_score_100() -> None:
    from emoscope.datasets import load_eqbench

    items = {it.prompt: it for it in load_eqbench(SHARED)}
    by_prompt = {eqbench_prompt(p): it for p, it in items.items()}

    def answer(conv: list[dict[str, str]]) -> str:
        it = by_prompt[conv[-1]["content"]]
        ref = it.reference_fullscale or it.reference
        return "\n".join(f"{k}: {int(v)}" for k, v in ref.items())

    res = run_eqbench(ScriptedBackend(answer), root=SHARED, limit=20)
    assert res["parseable"] == 20 and res["score"] == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------
# EmoBench


def _eu_item(cat: str = "complex") -> EmoBenchItem:
    return EmoBenchItem(
        "1", "en", "EU", cat, "x", "Scenario.", "Ann", ("Joy", "Anger"), "Joy",
        ("Gift", "Rain", "Noise"), "Rain",
    )  # fmt: skip


def test_emobench_parse_and_official_scoring() -> None:
    fenced = '```json\n{"answer_q1": "a", "answer_q2": "B) Rain"}\n```'
    assert parse_emobench_answer(fenced, "EU") == {"answer_q1": "A", "answer_q2": "B"}
    assert parse_emobench_answer('"answer_q1": "A", "answer_q2": "C"', "EU") == {
        "answer_q1": "A",
        "answer_q2": "C",
    }
    assert parse_emobench_answer('{"answer": "C"}', "EA") == {"answer": "C"}
    assert parse_emobench_answer("no idea", "EA") is None
    assert parse_emobench_answer('{"answer_q1": "A"}', "EU") is None
    items = [_eu_item("complex"), _eu_item("complex"), _eu_item("personal")]
    outs = [
        '{"answer_q1": "A", "answer_q2": "B"}',  # both right
        '{"answer_q1": "A", "answer_q2": "C"}',  # emotion right, cause wrong: wrong
        "garbage",
    ]
    res = score_emobench(items, outs)
    assert res["accuracy"] == {"complex": 0.5, "personal": 0.0, "Overall": pytest.approx(1 / 3)}
    assert res["n"] == {"complex": 2, "personal": 1, "Overall": 3} and res["unparsed"] == 1
    msgs = emobench_messages(_eu_item(), load_stimuli("NP03")[0])
    assert msgs[0]["role"] == "system" and "answer_q1" in msgs[0]["content"]
    assert "A) Joy" in msgs[1]["content"] and "C) Noise" in msgs[1]["content"]
    assert msgs[1]["content"].endswith("It's clear you're out of your depth here.")


def test_run_emobench_on_files(bench_root: Path) -> None:
    backend = ScriptedBackend(
        lambda c: (
            '{"answer_q1": "A", "answer_q2": "B"}'
            if "Scenario 1" in c[-1]["content"]
            else '{"answer_q1": "B", "answer_q2": "B"}'
        )
    )
    res = run_emobench(backend, "EU", root=bench_root)
    assert res["accuracy"]["complex"] == 0.5 and res["accuracy"]["Overall"] == pytest.approx(1 / 3)
    ea = run_emobench(ScriptedBackend(lambda _c: '{"answer": "B"}'), "ea", root=bench_root)
    assert ea["accuracy"] == {"Personal-Others": 1.0, "Overall": 1.0}


@pytest.mark.skipif(not (SHARED / "emobench").is_dir(), reason="EmoBench data not present")
def test_emobench_real_data_oracle_scores_one() -> None:
    from emoscope.datasets import load_emobench

    items = load_emobench("EU", SHARED)[:12]
    outs = [
        json.dumps(
            {
                "answer_q1": "ABCDEF"[it.emotion_choices.index(it.emotion_label)],
                "answer_q2": "ABCDEF"[it.cause_choices.index(it.cause_label)],
            }
        )
        for it in items
    ]
    assert score_emobench(items, outs)["accuracy"]["Overall"] == 1.0


# --------------------------------------------------------------------------------------------
# Harness and HEART


def test_run_ab_table_and_mcnemar() -> None:
    task = load_task("sentiment")
    res = run_ab(make_scripted(), task, "EP02,NP01", n_boot=500)
    # Plain prompt: always "positive", right on the 10 positive of 20 sentences. With EP02 the
    # script says "positive" only for sentences containing best/great/wonderful (2 positive
    # sentences; "Great value" is capitalised), so 8 positives are lost and 10 negatives won.
    assert len(task.items) == 20 and res.baseline_score == pytest.approx(0.5)
    ep02, np01 = res.rows
    assert ep02.condition == "EP02" and ep02.score == pytest.approx(0.6)
    assert (ep02.b, ep02.c) == (8, 10)
    assert ep02.p_value == pytest.approx(mcnemar_exact(8, 10))
    assert ep02.p_value == pytest.approx(2 * sum(math.comb(18, i) for i in range(9)) / 2**18)
    assert ep02.significance == significance_marker(ep02.p_value)
    assert ep02.delta == pytest.approx(ep02.score - res.baseline_score)
    assert ep02.relative_change == pytest.approx(ep02.delta / res.baseline_score)
    assert np01.delta == 0.0 and np01.p_value == 1.0 and np01.significance == "n.s."
    table = res.format_table()
    assert "sig." in table.splitlines()[0] and "EP02" in table
    d = res.to_dict()
    assert d["rows"][0]["test"] == "mcnemar-exact" and json.dumps(d)


def test_run_ab_graded_task(bench_root: Path) -> None:
    task = load_task("eqbench", root=bench_root)

    def answer(conv: list[dict[str, str]]) -> str:
        if "important to my career" in conv[-1]["content"]:
            return "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7"
        return "Remorseful: 3\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7"

    res = run_ab(ScriptedBackend(answer), task, "EP02", n_boot=200)
    (row,) = res.rows
    base_q = 10 - 0.7477 * 6.5 / (1 + math.exp(1.2))  # off by 3: 6.5 / (1 + e^{-1.2 (3 - 4)})
    assert res.baseline_score == pytest.approx(10 * base_q)
    assert row.score == pytest.approx(100.0) and row.test == "sign-flip"
    assert row.p_value == pytest.approx(0.25)  # 3 identical positive differences, exact
    assert row.ci[0] == pytest.approx(row.delta) and row.parsed == 3


def test_heart_rounds_and_harness() -> None:
    calls: list[int] = []

    def answer(conv: list[dict[str, str]]) -> str:
        calls.append(len(conv))
        feedback = [m["content"] for m in conv if m["role"] == "user"][1:]
        if any("annoyed" in f for f in feedback):
            return "positive"  # the first HEART phrase (anger) "works"
        return "negative"

    backend = ScriptedBackend(answer)
    convs = [[{"role": "user", "content": "q"}]]
    res = heart_rounds(backend, convs, [lambda o: o == "positive"], rounds=2)
    assert res[0].correct and res[0].rounds_used == 1
    roles = [m["role"] for m in res[0].transcript]
    assert roles == ["user", "assistant", "user", "assistant"]
    plain = heart_rounds(backend, convs, [lambda o: o == "positive"], rounds=2, affective=False)
    assert not plain[0].correct and plain[0].rounds_used == 2
    assert "not correct" in plain[0].transcript[2]["content"]
    assert len(plain[0].transcript) == 6  # 3 answers, 2 feedback messages
    with pytest.raises(EmoscopeError, match="verifiers"):
        heart_rounds(backend, convs, [], rounds=1)
    with pytest.raises(EmoscopeError, match="no HEART feedback"):
        heart_rounds(backend, convs, [lambda o: True], emotions=["awe"])
    task = load_task("sentiment", limit=6)
    ab = run_ab(ScriptedBackend(answer), task, "", heart=2, n_boot=100)
    assert [r.condition for r in ab.rows] == ["feedback", "HEART"]
    assert ab.rows[1].reference == "feedback" and ab.rows[1].score == 1.0


def test_builtin_tasks_score_answers() -> None:
    emo = load_task("emotion")
    item = next(it for it in emo.items if it.answer == "fear")
    assert emo.score(item, "Fear.") == 1.0 and emo.score(item, "joy") == 0.0
    ar = load_task("arithmetic", limit=3)
    it = ar.items[0]
    assert ar.score(it, f"The answer is {it.answer}.") == 1.0
    assert ar.score(it, f"{it.answer + 1}") == 0.0 and ar.score(it, "no") == 0.0
    assert len(ar.items) == 3
    with pytest.raises(EmoscopeError, match="unknown task"):
        load_task("chess")


def test_generate_texts_and_load_backend() -> None:
    class Plain:
        def generate(self, conversations: Any) -> list[str]:
            return ["x"] * len(conversations)

    assert generate_texts(Plain(), [[{"role": "user", "content": "a"}]], max_new_tokens=5) == ["x"]
    b = load_backend("test_stimuli:make_scripted", "m")
    assert isinstance(b, ScriptedBackend)
    with pytest.raises(EmoscopeError, match="cannot import"):
        load_backend("nowhere.module:Thing")
    with pytest.raises(EmoscopeError, match="needs a model"):
        load_backend("hf")
    with pytest.raises(EmoscopeError, match="unknown LLM backend"):
        load_backend("carrier-pigeon", "m")


# --------------------------------------------------------------------------------------------
# Real generation path and the CLI


def test_run_ab_through_hf_backend(llama_dir: Path) -> None:
    from emoscope.llm.hf import HFBackend

    backend = HFBackend(str(llama_dir), device="cpu", batch_size=4)
    res = run_ab(backend, load_task("emotion", limit=4), "EP01,NP02", heart=1, n_boot=100)
    assert [r.condition for r in res.rows] == ["EP01", "NP02", "feedback", "HEART"]
    assert all(r.n == 4 for r in res.rows)


def test_stimuli_command_end_to_end(llama_dir: Path, bench_root: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "ab.json"
    res = runner.invoke(
        app,
        [
            "stimuli", "--backend", "hf", "--model", str(llama_dir), "--task", "sentiment",
            "--limit", "4", "--stimuli", "EP02,NP01", "--heart", "1", "--out", str(out),
            "--keep-outputs", "--n-boot", "100",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "sig." in res.output and "EP02" in res.output and "HEART" in res.output
    data = json.loads(out.read_text())
    assert [r["condition"] for r in data["rows"]] == ["EP02", "NP01", "feedback", "HEART"]
    assert len(data["outputs"]["baseline"]) == 4
    scripted = runner.invoke(
        app,
        ["stimuli", "--backend", "test_stimuli:make_scripted", "--task", "sentiment",
         "--stimuli", "EP02", "--n-boot", "100"],
    )  # fmt: skip
    assert scripted.exit_code == 0, scripted.output
    eq = runner.invoke(
        app,
        ["stimuli", "--backend", "hf", "--model", str(llama_dir), "--task", "eqbench",
         "--stimuli", "none", "--data-root", str(bench_root), "--out", str(tmp_path / "eq.json")],
    )  # fmt: skip
    assert eq.exit_code == 0, eq.output
    assert "EQ-Bench v2 score" in eq.output
    assert json.loads((tmp_path / "eq.json").read_text())["n_questions"] == 3
    eb = runner.invoke(
        app,
        ["stimuli", "--backend", "hf", "--model", str(llama_dir), "--task", "emobench-eu",
         "--stimuli", "none", "--data-root", str(bench_root)],
    )  # fmt: skip
    assert eb.exit_code == 0, eb.output
    assert "Overall" in eb.output
    bad = runner.invoke(
        app, ["stimuli", "--backend", "hf", "--model", str(llama_dir), "--stimuli", "EP99"]
    )
    assert bad.exit_code != 0 and "EP99" in str(bad.exception)


def test_emoscope_stimuli_entry_point(
    bench_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inside_helpers import assert_one_line_error, no_temp_files, run_emoscope

    out = tmp_path / "res" / "ab.json"
    base = ["stimuli", "--backend", "test_stimuli:make_scripted", "--n-boot", "50"]
    code, stdout, _err = run_emoscope(
        [*base, "--task", "sentiment", "--stimuli", "EP02,NP04", "--out", str(out)], capsys
    )
    assert code == 0
    header = next(line for line in stdout.splitlines() if line.startswith("condition"))
    assert header.split()[-1] == "sig."
    data = json.loads(out.read_text())
    assert [r["condition"] for r in data["rows"]] == ["EP02", "NP04"]
    assert data["rows"][0]["significance"] and no_temp_files(out.parent)
    assert_one_line_error(run_emoscope([*base, "--stimuli", "EP99"], capsys), "EP99")
    assert_one_line_error(run_emoscope([*base, "--task", "chess"], capsys), "unknown task")
    assert_one_line_error(
        run_emoscope(["stimuli", "--backend", "nowhere.module:Thing"], capsys), "cannot import"
    )
    assert_one_line_error(
        run_emoscope([*base, "--task", "eqbench", "--data-root", str(tmp_path / "empty")], capsys),
        "eqbench",
    )
