"""Tests of the stimulus tasks, HEART rounds, the paired A/B harness and ``emoscope stimuli``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from stimuli_helpers import ScriptedBackend, make_scripted
from typer.testing import CliRunner

from emoscope.cli.inside import register
from emoscope.errors import EmoscopeError
from emoscope.stimuli import (
    generate_texts,
    heart_rounds,
    load_backend,
    load_task,
    mcnemar_exact,
    run_ab,
    significance_marker,
)

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
    b = load_backend("stimuli_helpers:make_scripted", "m")
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
        ["stimuli", "--backend", "stimuli_helpers:make_scripted", "--task", "sentiment",
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
    base = ["stimuli", "--backend", "stimuli_helpers:make_scripted", "--n-boot", "50"]
    code, stdout, _err = run_emoscope(
        [*base, "--task", "sentiment", "--stimuli", "EP02,NP04", "--out", str(out)], capsys
    )
    assert code == 0
    header = next(line for line in stdout.splitlines() if line.startswith("condition"))
    assert header.split()[-3:] == ["sig.", "p.Holm", "sig.Holm"]
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


def test_stimuli_command_label_scoring(
    llama_dir: Path, bench_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emoscope.llm.hf import HFBackend
    from inside_helpers import run_emoscope

    out = tmp_path / "ab.json"
    base = ["stimuli", "--backend", "hf", "--model", str(llama_dir), "--n-boot", "50"]
    code, stdout, err = run_emoscope(
        [*base, "--task", "sentiment", "--limit", "4", "--stimuli", "EP02,NP01",
         "--scoring", "label", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "EP02" in stdout and "label scoring" in err
    data = json.loads(out.read_text())
    assert [r["condition"] for r in data["rows"]] == ["EP02", "NP01"]
    # The same table as the library's label-scoring A/B on the same model.
    lib = run_ab(
        HFBackend(str(llama_dir), device="cpu"), load_task("sentiment", limit=4), "EP02,NP01",
        scoring="label", n_boot=50,
    ).to_dict()  # fmt: skip
    assert data["baseline_score"] == lib["baseline_score"]
    assert [r["score"] for r in data["rows"]] == [r["score"] for r in lib["rows"]]
    eb = tmp_path / "eb.json"
    code, stdout, err = run_emoscope(
        [*base, "--task", "emobench-eu", "--stimuli", "none", "--scoring", "label",
         "--data-root", str(bench_root), "--out", str(eb)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "Overall" in stdout and "unparsed" not in stdout
    assert json.loads(eb.read_text())["scoring"] == "label"
    eq = tmp_path / "eq.json"
    code, stdout, err = run_emoscope(
        [*base, "--task", "eqbench", "--stimuli", "none", "--scoring", "label",
         "--data-root", str(bench_root), "--out", str(eq)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(eq.read_text())
    assert res["scoring"] == "expected" and res["parseable"] == res["n_questions"] == 3
    assert "expected value" in stdout


def test_stimuli_command_label_scoring_bad_combinations(
    llama_dir: Path, bench_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inside_helpers import assert_one_line_error, run_emoscope

    out = tmp_path / "res" / "ab.json"
    label = ["--scoring", "label", "--out", str(out), "--n-boot", "50"]
    scripted = ["stimuli", "--backend", "stimuli_helpers:make_scripted", *label]
    # A backend that only generates cannot score choices, in the A/B and in a plain run.
    assert_one_line_error(
        run_emoscope([*scripted, "--task", "sentiment", "--stimuli", "EP02"], capsys),
        "label scoring needs a backend that scores given answers",
    )
    assert_one_line_error(
        run_emoscope([*scripted, "--task", "sentiment", "--stimuli", "none"], capsys),
        "only generates text",
    )
    assert_one_line_error(
        run_emoscope(
            ["stimuli", "--backend", "openai", "--model", "m", *label, "--task", "emotion"],
            capsys,
        ),
        "the openai backend only generates text",
    )
    hf = ["stimuli", "--backend", "hf", "--model", str(llama_dir), *label]
    for extra, fragment in [
        (["--heart", "1"], "--heart needs generated answers"),
        (["--task", "arithmetic"], "arithmetic task is not multiple choice"),
        (["--task", "eqbench", "--data-root", str(bench_root)], "needs a multiple-choice task"),
        (["--task", "eqbench", "--stimuli", "none", "--revise"], "--revise needs generated"),
        (["--keep-outputs"], "--keep-outputs keeps generated answers"),
        (["--scoring", "logits"], "unknown --scoring 'logits'"),
    ]:
        assert_one_line_error(run_emoscope([*hf, *extra], capsys), fragment)
    assert not out.exists() and not out.parent.exists()
