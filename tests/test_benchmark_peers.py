"""benchmarks/peers.py on the miniature data root: JSON contents, table, options and errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from bench_helpers import load_benchmark
from emoscope.datasets import load_dataset


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    return load_benchmark("peers")


def test_peers_writes_results(
    peers: ModuleType, mini_data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "peers.json"
    args = ["--recognizers", "lexicon,vader", "--repeats", "2", "--root", str(mini_data_root)]
    assert peers.main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))

    assert set(report["scoring"]) == {"meld-test", "goemotions-ekman-test"}
    assert "subset accuracy" in report["scoring"]["goemotions-ekman-test"]
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["python"].count(".") == 2
    assert "emoscope" in report["versions"] and "date" in report
    assert report["repeats"] == 2

    rows = {(r["recognizer_name"], r["benchmark"]): r for r in report["results"]}
    assert set(rows) == {
        (rec, bench)
        for rec in ("lexicon", "vader")
        for bench in ("meld-test", "goemotions-ekman-test")
    }
    meld_n = len(load_dataset("meld", "test", root=mini_data_root).examples)
    go = load_dataset("goemotions", "test", root=mini_data_root, taxonomy="ekman")
    n_multi = sum(1 for e in go.examples if len(e.labels) > 1)
    assert n_multi > 0  # the fixture has comments with two Ekman labels
    for (rec, bench), r in rows.items():
        assert r["n"] == (meld_n if bench == "meld-test" else len(go.examples))
        for key in ("weighted_f1", "macro_f1", "accuracy"):
            assert 0.0 <= r[key] <= 1.0, (rec, bench, key)
        assert len(r["seconds_per_repeat"]) == 2
        assert r["texts_per_second"] > 0
        assert r["multi_label_scoring"] == (bench == "goemotions-ekman-test")
    assert rows[("lexicon", "meld-test")]["mapping"] == "official:goemotions->ekman->meld"
    assert rows[("vader", "goemotions-ekman-test")]["mapping"] == "identity"
    go_row = rows[("vader", "goemotions-ekman-test")]
    assert go_row["n_multi_label_gold"] == n_multi
    # A single-label prediction can never match a two-label gold set exactly.
    assert go_row["accuracy"] <= go_row["max_accuracy_single_label"]
    assert "ece" in rows[("vader", "meld-test")] and "ece" not in go_row

    table = capsys.readouterr().out
    assert "| recogniser | dataset | n | mapping | weighted-F1 |" in table
    assert table.count("| lexicon |") == 2 and table.count("| vader |") == 2


def test_peers_default_recognizers(peers: ModuleType) -> None:
    from emoscope.recognizers.default import default_recognizer_name

    names = peers.default_recognizers()
    assert names[:3] == ["lexicon", "nrclex", "vader"]
    assert ("default" in names) == (default_recognizer_name() == "default")


def test_peers_unknown_recognizer(
    peers: ModuleType, mini_data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "peers.json"
    code = peers.main(["--recognizers", "nope", "--root", str(mini_data_root), "--out", str(out)])
    assert code == 2
    assert "unknown recogniser 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_peers_bad_repeats(peers: ModuleType, mini_data_root: Path) -> None:
    args = ["--recognizers", "lexicon", "--repeats", "0", "--root", str(mini_data_root)]
    assert peers.main([*args, "--out", "/nonexistent/never.json"]) == 2
