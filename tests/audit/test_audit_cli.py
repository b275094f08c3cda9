"""``emoscope audit`` on the command line: sections chosen with --only/--skip, and bad input
(an unknown model, a .gguf file that is no causal LM, a server that does not answer) ending in
one error line, exit code 2 and no report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import report_files

from emoscope import cli
from net_helpers import unused_port


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(["audit", *args])
    code = exc.value.code
    return (0 if code is None else int(code)), capsys.readouterr().err


def _assert_one_line_error(code: int, err: str, out: Path, *words: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0]
    assert not out.exists() or report_files(out) == []


def test_only_recognition_writes_the_report(
    audit_llama: Path, audit_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code, err = _run(
        ["--model", str(audit_llama), "--quick", "--only", "recognition", "--limit", "3",
         "--data-root", str(audit_root), "--cache-dir", str(tmp_path / "c"), "--out", str(out),
         "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert {"audit.json", "report.md", "report.html", "reliability.png"} <= set(report_files(out))
    audit = json.loads((out / "audit.json").read_text())
    assert audit["sections_run"] == ["recognition"] and audit["size"] == "quick"
    assert audit["sizes"]["meld_limit"] == 3
    # A second run with a section skipped reuses the finished one.
    code, err = _run(
        ["--model", str(audit_llama), "--quick", "--skip", "benchmarks,stimuli,probes,steering",
         "--limit", "3", "--data-root", str(audit_root), "--cache-dir", str(tmp_path / "c"),
         "--out", str(out), "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "recognition: finished in an earlier run" in err
    assert json.loads((out / "audit.json").read_text())["sections"]["recognition"]["cached"]


@pytest.mark.parametrize(
    ("flag", "value"), [("--only", "recognition,probe"), ("--skip", "everything")]
)
def test_unknown_section_names_are_an_error(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = _run(["--model", "smollm2-135m-instruct", flag, value, "--out", str(out)], capsys)
    _assert_one_line_error(code, err, out, "unknown section", flag)
    assert not out.exists()


def test_an_unknown_model_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = _run(["--model", "no-such-org/no-such-model", "--out", str(out)], capsys)
    _assert_one_line_error(code, err, out, "no-such-org/no-such-model")


def test_an_unknown_model_with_the_hub_unreachable_is_one_error_line_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    out = tmp_path / "out"
    code, err = _run(["--model", "nope", "--quick", "--out", str(out)], capsys)
    _assert_one_line_error(code, err, out, "'nope'", "cannot be reached", "emoscope models")


def _encoder_gguf(path: Path) -> Path:
    """A well-formed GGUF file of an encoder (BERT) architecture: weights, but no causal LM."""
    import numpy as np

    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_block_count(1)
    w.add_context_length(16)
    w.add_embedding_length(8)
    w.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("kind", ["encoder", "truncated"])
def test_a_gguf_that_is_not_a_causal_lm_is_one_error_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.gguf"
    if kind == "encoder":
        _encoder_gguf(bad)
    else:
        bad.write_bytes(b"GGUF" + b"\x00" * 4)
    out = tmp_path / "out"
    code, err = _run(["--model", str(bad), "--out", str(out)], capsys)
    _assert_one_line_error(code, err, out, "notes.gguf")
    if kind == "encoder":
        assert "causal LM" in err and "bert" in err


def test_an_unreachable_server_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{unused_port()}/v1"
    code, err = _run(
        ["--model", "gpt-x", "--backend", "openai", "--base-url", url, "--out", str(out)], capsys
    )
    _assert_one_line_error(code, err, out, "gpt-x", url)
