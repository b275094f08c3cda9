"""Tests of the ``emoscope`` command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from emoscope import cli
from emoscope.datasets.base import Dataset
from eval_helpers import conversational

REC = "eval_helpers:KeywordRecognizer"
TESTS = Path(__file__).resolve().parents[1]
SHARED_DATA = TESTS.parents[1] / "shared" / "data"

Run = Callable[..., tuple[int, str, str]]


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``emoscope ARGS`` in-process; return (exit code, stdout, stderr)."""

    def _run(*args: str, stdin: str | io.StringIO | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(
                sys, "stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin
            )
        with pytest.raises(SystemExit) as exc:
            cli.main(list(args))
        out = capsys.readouterr()
        code = exc.value.code
        return (code if isinstance(code, int) else (0 if code is None else 1)), out.out, out.err

    return _run


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0]
    assert "Traceback" not in err and out == ""


def test_version(run: Run) -> None:
    for args in (["--version"], ["version"]):
        code, out, _ = run(*args)
        assert code == 0 and out.startswith("emoscope ")


def test_no_arguments_shows_help(run: Run) -> None:
    code, out, err = run()
    assert code == 2 and "analyze" in out + err and "eval" in out + err


def test_analyze_table(run: Run) -> None:
    code, out, _ = run("analyze", "-r", REC, "I am furious", "hello there")
    assert code == 0
    assert "anger" in out and "neutral" in out and "I am furious" in out


def test_analyze_json(run: Run) -> None:
    code, out, err = run("analyze", "--json", "--recognizer", REC, "I am furious", "wow")
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == ["I am furious", "wow"]
    assert [r["label"] for r in rows] == ["anger", "surprise"]
    assert rows[0]["taxonomy"] == "goemotions" and len(rows[0]["probs"]) == 28
    assert len(rows[0]["vad"]) == 3


def test_analyze_table_prints_markup_literally(run: Run) -> None:
    code, out, _ = run("analyze", "-r", REC, "[red]hi[/]")
    assert code == 0 and "[red]hi[/]" in out


def test_analyze_maps_taxonomy(run: Run) -> None:
    code, out, _ = run("analyze", "--json", "-r", REC, "-t", "meld", "I am annoyed")
    assert code == 0
    row = json.loads(out)
    assert row["taxonomy"] == "meld" and row["label"] == "anger"
    assert sum(row["probs"].values()) == pytest.approx(1)


@pytest.mark.parametrize("args", [[], ["-"]])
def test_analyze_reads_stdin(run: Run, args: list[str]) -> None:
    code, out, _ = run("analyze", "--json", "-r", REC, *args, stdin="I am furious\n\n  wow \n")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["I am furious", "wow"]


def test_analyze_default_recognizer_falls_back_with_a_note(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emoscope.recognizers import default

    monkeypatch.setattr(default, "default_recognizer_name", lambda: REC)
    code, out, err = run("analyze", "--json", "hello")
    assert code == 0 and json.loads(out)["label"] == "neutral"
    assert err.startswith("note: ") and len(err.strip().splitlines()) == 1


def test_default_recognizer_is_the_shipped_model(run: Run) -> None:
    # The fine-tuned model ships in the package: with torch and transformers installed, a command
    # without --recognizer uses it, without the fall-back note.
    pytest.importorskip("transformers")
    from emoscope.recognizers.encoder import default_model_path

    assert (default_model_path() / "model.safetensors").is_file()
    assert cli.default_recognizer_name() == "default"
    code, out, err = run("analyze", "--json", "I am so happy today")
    assert code == 0 and err == "", err
    pred = json.loads(out)
    assert pred["taxonomy"] == "meld" and pred["vad"] is not None and pred["label"] == "joy"


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (["analyze", "-r", "no-such-recognizer", "hi"], None, "unknown recogniser"),
        (["analyze", "-r", "no_such_module:Thing", "hi"], None, "cannot import"),
        (["analyze", "-r", REC, "-t", "klingon", "hi"], None, "unknown taxonomy"),
        (["analyze", "-r", REC], "", "no input"),
        (["analyze", "-r", REC], " \n\n", "no input"),
        (["analyze", "-r", REC], _TTY(), "no input"),
        (["analyze", "-r", REC, "-", "hi"], None, "cannot be mixed"),
        (["dialogue", "no/such/file.json", "-r", REC], None, "no such file"),
        (["eval", "-r", REC], None, "exactly one of --dataset and --dataset-file"),
        (["eval", "-r", REC, "-d", "no-such-dataset"], None, "unknown dataset"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    run: Run, args: list[str], stdin: str | io.StringIO | None, fragment: str
) -> None:
    assert_one_line_error(*run(*args, stdin=stdin), fragment)


def test_usage_errors_exit_2(run: Run) -> None:
    for args in (["analyze", "--no-such-option"], ["no-such-command"], ["eval", "--limit", "0"]):
        code, _out, err = run(*args)
        assert code == 2 and "Traceback" not in err


def test_missing_dataset_files(run: Run, tmp_path: Path) -> None:
    code, out, err = run("eval", "-r", REC, "-d", "meld", "--data-root", str(tmp_path))
    assert_one_line_error(code, out, err, "meld")


DIALOGUES = [
    {
        "id": "d1",
        "utterances": [
            {"speaker": "Ross", "text": "I am furious!"},
            {"speaker": "Rachel", "text": "Wow, really?"},
        ],
    },
    {"id": "d2", "utterances": [{"speaker": "Joey", "text": "thanks"}]},
]


def test_dialogue(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(DIALOGUES), "utf-8")
    code, out, _ = run("dialogue", str(path), "-r", REC)
    assert code == 0 and "Ross" in out and "anger" in out and "gratitude" in out

    saved = tmp_path / "out" / "preds.json"
    code, out, err = run(
        "dialogue", str(path), "-r", REC, "--json", "-t", "ekman", "--out", str(saved)
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["dialogue"], r["index"], r["speaker"], r["label"]) for r in rows] == [
        ("d1", 0, "Ross", "anger"),
        ("d1", 1, "Rachel", "surprise"),
        ("d2", 0, "Joey", "joy"),
    ]
    doc = json.loads(saved.read_text("utf-8"))
    assert [d["id"] for d in doc["dialogues"]] == ["d1", "d2"]
    first = doc["dialogues"][0]["utterances"][0]
    assert first["text"] == "I am furious!" and first["prediction"]["taxonomy"] == "ekman"
    assert str(saved) in err


def test_dialogue_malformed_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"id": "d1", "utterances": [{"speaker": "Ross"', "utf-8")
    code, out, err = run("dialogue", str(path), "-r", REC)
    assert_one_line_error(code, out, err, "broken.json")


def test_dialogue_empty_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]", "utf-8")
    code, out, err = run("dialogue", str(path), "-r", REC)
    assert_one_line_error(code, out, err, "empty.json")


@pytest.fixture
def toy_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``--dataset toy`` load the toy MELD dataset; other names go to the real loader."""
    import emoscope.datasets as datasets_module

    real = datasets_module.load_dataset

    def load(name: str, split: str = "test", root: object = None, **kwargs: object) -> Dataset:
        if name == "toy":
            return conversational()
        return real(name, split, root, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(datasets_module, "load_dataset", load)


@pytest.mark.usefixtures("toy_dataset")
def test_eval_prints_table_and_writes_report(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("eval", "-r", REC, "-d", "toy", "--no-progress")
    assert code == 0
    assert "accuracy" in out and "0.8571" in out and "official:goemotions->ekman->meld" in out
    folder = tmp_path / "runs" / "eval" / "keyword-toy-meld-test"
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion.png", "reliability.png", "report.json", "report.md"
    ]  # fmt: skip
    assert json.loads((folder / "report.json").read_text())["n"] == 7
    assert "wrote the report" in err and "7/7" not in err  # --no-progress

    code, _, _ = run("eval", "-r", REC, "-d", "toy", "--limit", "2", "--out", "elsewhere",
                     "--batch-size", "1", "--no-progress")  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "elsewhere" / "report.json").read_text())
    assert (report["n"], report["limit"]) == (3, 2)


def test_eval_dataset_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,label\nI am furious,anger\nwow,surprise\nhello,neutral\nso sad,joy\n")
    code, _out, err = run("eval", "-r", REC, "--dataset-file", str(path), "-t", "ekman",
                         "--out", str(tmp_path / "report"), "--no-progress")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["n"] == 4 and report["taxonomy"] == "ekman"
    assert report["classification"]["accuracy"] == pytest.approx(3 / 4)


def test_eval_dialogue_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "talks.csv"
    path.write_text(
        "dialogue_id,turn,speaker,text,label\n"
        "a,1,Ross,I am furious,anger\n"
        "a,2,Rachel,wow,surprise\n"
        "b,1,Joey,so sad,sadness\n"
    )
    code, _out, err = run("eval", "-r", REC, "--dataset-file", str(path), "-t", "meld",
                         "--out", str(tmp_path / "report"), "--no-progress")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["n"] == 3 and report["classification"]["accuracy"] == 1


def test_eval_dataset_file_with_unknown_label(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,label\nI am furious,anger\nhi,happy\n")
    code, out, err = run("eval", "-r", REC, "--dataset-file", str(path), "-t", "ekman")
    assert_one_line_error(code, out, err, "mine.csv, line 3")


def test_eval_dataset_file_needs_taxonomy(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,label\nI am furious,anger\n")
    code, out, err = run("eval", "-r", REC, "--dataset-file", str(path))
    assert_one_line_error(code, out, err, "--taxonomy")


def test_datasets(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("datasets", "--data-root", str(tmp_path))
    assert code == 0
    for name in ("meld", "emorynlp", "goemotions", "emobank"):
        assert name in out
    assert "missing" in out


@pytest.mark.skipif(not (SHARED_DATA / "meld").is_dir(), reason="shared data not present")
def test_datasets_with_shared_data(run: Run) -> None:
    code, out, _ = run("datasets", "--data-root", str(SHARED_DATA))
    assert code == 0 and "test 2,610" in out  # MELD test utterances
    assert "missing" not in out


def test_recognizers(run: Run) -> None:
    code, out, _ = run("recognizers")
    assert code == 0
    names = out.split()
    assert "lexicon" in names and "default" in names and "vader" in names


def test_recognizers_says_where_the_base_encoder_comes_from(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOSCOPE_BASE_MODEL", str(tmp_path))
    code, out, _ = run("recognizers")
    assert code == 0
    assert f"base encoder of the default model: {tmp_path} (from env)" in out


def _subprocess(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "emoscope.cli", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_subprocess_exit_codes_and_stdin() -> None:
    ok = _subprocess("analyze", "--json", "-r", REC, stdin="I am furious\nwow\n")
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["label"] for line in ok.stdout.splitlines()] == ["anger", "surprise"]

    bad = _subprocess("analyze", "-r", "no-such-recognizer", "hi")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: unknown recogniser") and bad.stderr.count("\n") == 1

    usage = _subprocess("analyze", "--no-such-option")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def _lexicon_ready() -> bool:
    from emoscope.errors import EmoscopeError
    from emoscope.recognizers import load_recognizer

    try:
        load_recognizer("lexicon")
    except (EmoscopeError, OSError, ImportError):
        return False
    return True


@pytest.mark.skipif(not (SHARED_DATA / "meld").is_dir(), reason="MELD data not present")
def test_eval_lexicon_on_meld_end_to_end(run: Run, tmp_path: Path) -> None:
    if not _lexicon_ready():
        pytest.skip("the lexicon recogniser cannot be loaded yet")
    out_dir = tmp_path / "meld"
    code, _out, err = run("eval", "--recognizer", "lexicon", "--dataset", "meld", "--split", "test",
                         "--limit", "200", "--data-root", str(SHARED_DATA), "--out", str(out_dir),
                         "--no-progress")  # fmt: skip
    assert code == 0, err
    report = json.loads((out_dir / "report.json").read_text())
    assert report["dataset"] == "meld" and report["n"] >= 200
    assert report["mapping"] == "official:goemotions->ekman->meld"
    assert 0 < report["classification"]["accuracy"] < 1
    assert report["vad"] is None  # MELD has no gold VAD
    assert {"report.md", "confusion.png", "reliability.png"} <= {p.name for p in out_dir.iterdir()}
