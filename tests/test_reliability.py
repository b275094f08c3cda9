"""Regression tests of issue 14: every bad input is a clear error (exit 2 from the CLI)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from emoscope import Dialogue, cli, load_recognizer
from emoscope.datasets import read_labelled_file
from emoscope.errors import DataError, EmoscopeError

REC = "lexicon"


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:  # fmt: skip
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    with pytest.raises(SystemExit) as exc:
        cli.main(list(args))
    out = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.out, out.err


def _one_line_error(result: tuple[int, str, str], fragment: str) -> str:
    code, out, err = result
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


# 1. undecodable text -------------------------------------------------------------------------


def test_undecodable_stdin_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    res = _run(monkeypatch, capsys, "analyze", "-r", REC, stdin=b"fine\ncaf\xe9\n")
    line = _one_line_error(res, "stdin, line 2: invalid UTF-8 byte 0xe9 at column 4")
    assert "UTF-8" in line


def test_undecodable_argument_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arg = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands such argv to us
    res = _run(monkeypatch, capsys, "analyze", "-r", REC, "ok", arg)
    _one_line_error(res, "argument 2, line 1: invalid UTF-8 byte 0xe9")


def test_python_api_rejects_lone_surrogates() -> None:
    with pytest.raises(EmoscopeError, match="surrogate U\\+DCE9"):
        load_recognizer(REC).predict(["caf\udce9"])


# 4. train on unlabelled input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("text,label\n", "no labelled rows (no rows)"),
        ("text\nhello\nworld\n", "no labelled rows (2 rows, none with a label)"),
        ("text,label\nI am happy,joy\n", "too few rows to train: 1"),
    ],
)
def test_train_on_unlabelled_or_tiny_input_is_exit_2(
    content: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    f = tmp_path / "h.csv"
    f.write_text(content)
    res = _run(
        monkeypatch,
        capsys,
        "train",
        "--dataset",
        str(f),
        "-t",
        "meld",
        "--out",
        str(tmp_path / "m"),
    )
    _one_line_error(res, fragment)
    assert not (tmp_path / "m").exists()


# 5. eval on a file without labels ------------------------------------------------------------


def test_eval_dataset_file_without_labels_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "nl.csv"
    f.write_text("text\nhello\nworld\n")
    res = _run(
        monkeypatch,
        capsys,
        "eval",
        "--dataset-file",
        str(f),
        "-t",
        "meld",
        "-r",
        REC,
        "-o",
        str(tmp_path / "r"),
    )
    _one_line_error(res, "'label' column")
    with pytest.raises(DataError, match="no labelled rows"):
        read_labelled_file(f, "meld")


# 6. CR-only line endings, unterminated quotes in annotate -------------------------------------


def test_annotate_cr_only_line_endings_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "c.csv"
    src.write_bytes(b"id,text\r1,I love it\r")
    res = _run(monkeypatch, capsys, "annotate", str(src), str(tmp_path / "o.csv"), "-r", REC)
    _one_line_error(res, "line endings")
    assert not (tmp_path / "o.csv").exists()


def test_annotate_unterminated_quote_is_a_bad_row_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "q.csv"
    src.write_text('id,text\n0,fine\n1,"I love it\n2,fine\n3,ok\n')
    out = tmp_path / "o.csv"
    code, _, err = _run(monkeypatch, capsys, "annotate", str(src), str(out), "-r", REC)
    assert code == 0, err
    bad = [json.loads(x) for x in Path(f"{out}.bad-rows.jsonl").read_text().splitlines()]
    assert len(bad) == 1 and bad[0]["line"] == 3 and "never closed" in bad[0]["reason"]


# 7. output paths checked before the work ------------------------------------------------------


def test_outputs_are_checked_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    data = tmp_path / "d.csv"
    data.write_text("text,label\nI am happy,joy\nso sad,sadness\nwow,surprise\n")
    dia = tmp_path / "d.json"
    dia.write_text('[{"speaker": "A", "text": "hi"}]')
    calls: list[str] = []
    import importlib

    evaluate_mod = importlib.import_module("emoscope.evaluate")
    training_mod = importlib.import_module("emoscope.training")

    monkeypatch.setattr(training_mod, "_load_tasks", lambda *a: calls.append("train") or [])
    monkeypatch.setattr(evaluate_mod, "evaluate", lambda *a, **k: calls.append("eval"))
    res = _run(
        monkeypatch,
        capsys,
        "train",
        "--dataset",
        str(data),
        "-t",
        "meld",
        "--out",
        str(blocker / "m"),
    )
    _one_line_error(res, "a-file: is not a folder")
    res = _run(
        monkeypatch,
        capsys,
        "eval",
        "--dataset-file",
        str(data),
        "-t",
        "meld",
        "-r",
        REC,
        "-o",
        str(blocker / "r"),
    )
    _one_line_error(res, "a-file: is not a folder")
    res = _run(monkeypatch, capsys, "dialogue", str(dia), "-r", REC, "-o", str(blocker / "x.json"))
    _one_line_error(res, "a-file: is not a folder")
    assert calls == []
    res = _run(monkeypatch, capsys, "dialogue", str(dia), "-r", REC, "-o", str(tmp_path))
    line = _one_line_error(res, "is a folder; expected a file name")
    assert ".tmp" not in line


def test_a_folder_as_input_is_not_called_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (("dialogue", str(tmp_path)), ("annotate", str(tmp_path), str(tmp_path / "o.csv")),
                 ("eval", "--dataset-file", str(tmp_path), "-t", "meld", "-r", REC)):  # fmt: skip
        line = _one_line_error(
            _run(monkeypatch, capsys, *args, "-r", REC)
            if args[0] != "eval"
            else _run(monkeypatch, capsys, *args),
            "is a folder",
        )
        assert "no such file" not in line


# 8. per-text length limit --------------------------------------------------------------------


def test_one_per_text_limit_for_cli_python_and_service(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from emoscope.recognizers.base import MAX_TEXT_CHARS
    from emoscope.serve import ServeConfig

    assert ServeConfig().max_text_chars == MAX_TEXT_CHARS == 2000
    big = b"a" * 1_000_000 + b"\n"
    res = _run(monkeypatch, capsys, "analyze", "-r", REC, stdin=big)
    _one_line_error(res, "text 1 has 1,000,000 characters; the limit is 2,000")
    with pytest.raises(EmoscopeError, match="the limit is 2,000 characters"):
        load_recognizer(REC).predict(["a" * 2001])
    monkeypatch.setenv("EMOSCOPE_MAX_TEXT_CHARS", "3000")
    assert len(load_recognizer(REC).predict(["a" * 2001])) == 1
    code, _, err = _run(monkeypatch, capsys, "analyze", "-r", REC, "--json", stdin=b"b" * 2500)
    assert code == 0, err
    monkeypatch.setenv("EMOSCOPE_MAX_TEXT_CHARS", "zero")
    _one_line_error(
        _run(monkeypatch, capsys, "analyze", "-r", REC, "hi"), "EMOSCOPE_MAX_TEXT_CHARS"
    )


# 9. small ones ------------------------------------------------------------------------------


def test_bom_is_dropped_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        monkeypatch, capsys, "analyze", "-r", REC, "--json", stdin=b"\xef\xbb\xbfI love it\n"
    )
    assert code == 0, err
    assert json.loads(out)["text"] == "I love it"


def test_json_error_does_not_say_at_at(tmp_path: Path) -> None:
    from emoscope.datasets import read_dialogue_file

    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "unterminated}\n')
    with pytest.raises(DataError) as e:
        read_dialogue_file(f)
    assert "at at" not in str(e.value) and "starting at column" in str(e.value)


def test_python_api_rejects_empty_text_and_empty_dialogue_like_cli_and_http() -> None:
    rec = load_recognizer(REC)
    with pytest.raises(EmoscopeError, match="input 0 is empty"):
        rec.predict([""])
    with pytest.raises(EmoscopeError, match="input 1 is a dialogue without utterances"):
        rec.predict(["hi", Dialogue([])])
    assert len(rec.predict(["hi", Dialogue(["a", "b"])])) == 3


def test_annotate_makes_texts_over_the_shared_limit_bad_rows(tmp_path: Path) -> None:
    from emoscope.annotate import AnnotateOptions, annotate

    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,I love it\n2," + "a" * 3000 + "\n")
    res = annotate(src, tmp_path / "o.csv", AnnotateOptions(recognizer=REC), progress=False)
    bad = [json.loads(x) for x in res.bad_rows_file.read_text().splitlines()]
    assert res.bad == 1 and bad[0]["line"] == 3 and "EMOSCOPE_MAX_TEXT_CHARS" in bad[0]["reason"]
