"""Tests of emoscope.report: the report files, their atomicity and the console table."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from emoscope import report
from emoscope.datasets.base import Dataset, Example
from emoscope.evaluate import EvalResult, evaluate
from emoscope.labels import get_taxonomy
from eval_helpers import (
    GOEMOTIONS_ROWS,
    KeywordRecognizer,
    MultiKeywordRecognizer,
    conversational,
    texts_dataset,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def single() -> EvalResult:
    return evaluate(KeywordRecognizer(), conversational(), progress=False)


def test_single_label_report_files(single: EvalResult, tmp_path: Path) -> None:
    out = tmp_path / "run" / "nested"
    written = report.write_report(single, out)
    names = {p.name for p in written}
    assert names == {"report.json", "report.md", "confusion.png", "reliability.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    assert json.loads((out / "report.json").read_text("utf-8")) == json.loads(
        json.dumps(single.to_dict())
    )
    for png in ("confusion.png", "reliability.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)
    md = (out / "report.md").read_text("utf-8")
    assert md.startswith("# keyword on toy-meld / test")
    assert "official:goemotions->ekman->meld" in md
    assert "| accuracy | 0.8571 |" in md
    assert "| label | precision | recall | F1 | support |" in md
    assert "| fear | 0.0000 | 0.0000 | 0.0000 | 1 |" in md
    assert "## Calibration" in md and "ECE (10 bins)" in md
    assert "## VAD" not in md


def test_multi_label_report_has_no_confusion_or_reliability(tmp_path: Path) -> None:
    result = evaluate(MultiKeywordRecognizer(), texts_dataset(GOEMOTIONS_ROWS, "goemotions"),
                      progress=False)  # fmt: skip
    names = {p.name for p in report.write_report(result, tmp_path)}
    assert names == {"report.json", "report.md"}
    md = (tmp_path / "report.md").read_text("utf-8")
    assert "multi-label, exact-match accuracy" in md and "## Calibration" not in md


def test_vad_report(tmp_path: Path) -> None:
    tax = get_taxonomy("goemotions")
    examples = [Example(t, vad=tax.vad_of(lab)) for t, lab in
                [("furious", "anger"), ("love", "love"), ("sad", "sadness")]]  # fmt: skip
    result = evaluate(KeywordRecognizer(), Dataset("toy-vad", "test", examples), progress=False)
    report.write_report(result, tmp_path)
    md = (tmp_path / "report.md").read_text("utf-8")
    assert "## VAD (n = 3)" in md
    assert "| dimension | Pearson r | CCC | MAE |" in md
    assert "| valence | 1.0000 | 1.0000 | 0.0000 |" in md
    assert "VAD (n = 3)" in report.format_table(result)


def test_undefined_correlation_shows_as_na(tmp_path: Path) -> None:
    tax = get_taxonomy("goemotions")
    examples = [Example(t, vad=tax.vad_of("anger")) for t in ("furious", "so furious")]
    result = evaluate(KeywordRecognizer(), Dataset("toy-vad", "test", examples), progress=False)
    report.write_report(result, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["vad"]["valence"]["pearson_r"] is None
    assert "| valence | n/a |" in (tmp_path / "report.md").read_text()


def _old_report(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    old = {"report.json": b'{"old": true}\n', "report.md": b"# old\n"}
    for name, content in old.items():
        (folder / name).write_bytes(content)
    return old


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_failed_rendering_writes_nothing(
    single: EvalResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _old_report(tmp_path / "run")

    def broken(result: EvalResult) -> bytes:
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr(report, "_reliability_png", broken)
    with pytest.raises(RuntimeError):
        report.write_report(single, tmp_path / "run")
    assert _snapshot(tmp_path / "run") == old


def test_failure_mid_write_leaves_no_partial_file(
    single: EvalResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up halfway through report.md: no half-written file may be left."""
    old = _old_report(tmp_path / "run")
    real_atomic_open = report.atomic_open

    class HalfWriter:
        def __init__(self, fh: IO[Any]) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    @contextlib.contextmanager
    def flaky_open(path: Path, mode: str = "w") -> Iterator[Any]:
        with real_atomic_open(path, mode) as fh:
            yield HalfWriter(fh) if Path(path).name == "report.md" else fh

    monkeypatch.setattr(report, "atomic_open", flaky_open)
    with pytest.raises(OSError, match="No space left"):
        report.write_report(single, tmp_path / "run")
    files = _snapshot(tmp_path / "run")
    assert files["report.md"] == old["report.md"]  # the old file is intact
    assert not [n for n in files if n.endswith(".tmp")]  # the partial temp file is gone
    # report.json was written before the failure, completely.
    assert json.loads(files["report.json"])["recognizer"] == "keyword"


def test_format_table(single: EvalResult) -> None:
    table = report.format_table(single)
    for expected in ("keyword", "toy-meld / test", "accuracy", "0.8571", "per label", "fear",
                     "ECE (10 bins)", "Brier score"):  # fmt: skip
        assert expected in table
    assert "\x1b[" not in table  # plain text, no colour codes
