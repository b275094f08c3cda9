"""The audit end to end on a tiny random Llama (open weights) and on a loopback server (black
box): every section, the cache and resume, and the report files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import TINY, report_files, section_status

from emoscope.audit import AuditConfig, open_target, run_audit, select_sections
from emoscope.audit import sections as sections_module
from emoscope.errors import EmoscopeError

REPORT = ["audit.json", "report.html", "report.md"]


def _config(root: Path, **kw: Any) -> AuditConfig:
    return AuditConfig(sizes=TINY, data_root=str(root), judge="lexicon", **kw)


@pytest.fixture(scope="module")
def open_audit(
    audit_llama: Path, audit_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    import torch

    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("llm-cache")
    out = tmp_path_factory.mktemp("audit") / "out"
    target = open_target(str(audit_llama), cache=cache / "responses.sqlite")
    audit = run_audit(target, _config(audit_root), out, progress=False, llm_cache=cache)
    return audit, out


def test_select_sections_keeps_report_order_and_rejects_unknown_names() -> None:
    assert select_sections() == ("recognition", "benchmarks", "stimuli", "probes", "steering")
    assert select_sections("steering,recognition") == ("recognition", "steering")
    assert select_sections(None, ["probes", "steering"]) == ("recognition", "benchmarks", "stimuli")
    with pytest.raises(EmoscopeError, match=r"unknown section.*probe\b"):
        select_sections("probe")
    with pytest.raises(EmoscopeError, match="--skip: unknown"):
        select_sections(skip="everything")
    with pytest.raises(EmoscopeError, match="no section"):
        select_sections("probes", "probes")


def test_every_section_runs_on_open_weights(open_audit: tuple[dict[str, Any], Path]) -> None:
    audit, out = open_audit
    assert section_status(audit) == dict.fromkeys(
        ["recognition", "benchmarks", "stimuli", "probes", "steering"], "done"
    )
    rec = audit["sections"]["recognition"]
    assert rec["mode"] == "score" and rec["parse_failures"] == 0
    assert rec["n"] >= TINY.meld_limit
    assert sum(rec["predicted_distribution"].values()) == pytest.approx(1.0)
    assert 0.0 <= rec["calibration"]["ece"] <= 1.0
    bench = audit["sections"]["benchmarks"]
    assert bench["emobench"]["EU"]["scoring"] == "label"
    assert bench["emobench"]["EU"]["n"]["Overall"] == TINY.emobench_limit
    assert bench["eqbench"]["expected_value"]["n_questions"] == TINY.eqbench_limit
    stim = audit["sections"]["stimuli"]["tasks"]
    assert [r["condition"] for r in stim["emotion"]["rows"]] == ["EP02", "NP01"]
    assert stim["emotion"]["n_items"] == TINY.stimuli_items
    assert {"p_value", "p_holm", "significance_holm"} <= set(stim["emobench-eu"]["rows"][0])
    probes = audit["sections"]["probes"]
    curve = probes["report"]["curves"]["model"]["scores"]
    assert [s["layer"] for s in curve] == list(range(probes["n_layers"] + 1))
    assert "control" in probes["report"]["curves"]
    steer = audit["sections"]["steering"]
    assert [r["alpha"] for r in steer["rows"]] == [0.0, 4.0]
    assert steer["layers"] == [1]  # the 2-layer model: a one-layer band a third of the way in
    assert steer["directions"].startswith("emoscope elicitation")
    for alpha_row in steer["rows"]:
        per = [steer["per_emotion"][e]["rows"] for e in steer["emotions"]]
        assert alpha_row["success"] == pytest.approx(
            sum(p[steer["rows"].index(alpha_row)]["expression_accuracy"] for p in per) / len(per)
        )
    assert json.loads((out / "audit.json").read_text()) == json.loads(json.dumps(audit))


def test_degenerate_replies_count_as_steering_failures(
    open_audit: tuple[dict[str, Any], Path],
) -> None:
    # A random tiny model mostly loops; a looping reply is never a success.
    steer = open_audit[0]["sections"]["steering"]
    for emo, ev in steer["per_emotion"].items():
        for row in ev["rows"]:
            judged = row["recognised"]
            hits = judged.get(emo, 0)
            assert row["expression_accuracy"] == pytest.approx(hits / ev["n_prompts"])
            assert judged.get("degenerate", 0) == round(row["degenerate_share"] * ev["n_prompts"])


def test_the_report_is_self_contained(open_audit: tuple[dict[str, Any], Path]) -> None:
    _, out = open_audit
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"reliability.png", "label_distribution.png", "probe_layers.png", "steering.png"} <= set(
        pngs
    )
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r"<img[^>]*src=\"([^\"]+)\"", page)
    assert len(images) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in images)
    md = (out / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in md
    for title in ("MELD", "benchmarks", "stimuli", "Probes", "Steerability"):
        assert title in md
    assert "McNemar" in md and "Holm" in md


def test_a_rerun_uses_the_cache_and_a_changed_setting_reruns_its_section(
    open_audit: tuple[dict[str, Any], Path],
    audit_llama: Path,
    audit_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, out = open_audit
    target = open_target(str(audit_llama))

    def boom(*_a: Any, **_k: Any) -> dict[str, Any]:
        raise AssertionError("a cached section ran again")

    for name in ("benchmarks", "stimuli", "probes", "steering"):
        monkeypatch.setitem(sections_module.SECTION_FUNCTIONS, name, boom)
    again = run_audit(
        target, _config(audit_root, meld_limit=2), out, progress=False, llm_cache=tmp_path
    )
    assert [k for k, v in again["sections"].items() if v.get("cached")] == [
        "benchmarks", "stimuli", "probes", "steering"
    ]  # fmt: skip
    # --limit is part of the recognition key only: that section ran again, the rest did not.
    assert "cached" not in again["sections"]["recognition"]


def test_a_cut_run_leaves_no_report_and_the_next_run_continues(
    audit_llama: Path, audit_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    target = open_target(str(audit_llama))
    config = _config(audit_root, sections=("recognition", "benchmarks"))

    def cut(*_a: Any, **_k: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setitem(sections_module.SECTION_FUNCTIONS, "benchmarks", cut)
    with pytest.raises(KeyboardInterrupt):
        run_audit(target, config, out, progress=False, llm_cache=tmp_path / "c")
    assert report_files(out) == []
    assert (out / ".audit" / "sections" / "recognition.json").is_file()
    monkeypatch.undo()
    audit = run_audit(target, config, out, progress=False, llm_cache=tmp_path / "c")
    assert audit["sections"]["recognition"].get("cached") is True
    assert "cached" not in audit["sections"]["benchmarks"]
    assert set(REPORT) <= set(report_files(out))


def test_black_box_sections_against_a_loopback_server(
    chat_server: Any, audit_root: Path, tmp_path: Path
) -> None:
    target = open_target("loopback-model", backend="openai", base_url=chat_server.url)
    assert not target.scores and not target.open_weight
    audit = run_audit(target, _config(audit_root), tmp_path / "out", progress=False,
                      llm_cache=tmp_path / "c")  # fmt: skip
    status = section_status(audit)
    assert status == {"recognition": "done", "benchmarks": "done", "stimuli": "done",
                      "probes": "skipped", "steering": "skipped"}  # fmt: skip
    for name in ("probes", "steering"):
        assert "black box" in audit["sections"][name]["reason"]
    rec = audit["sections"]["recognition"]
    assert rec["mode"] == "generate"
    assert any("cannot score" in n for n in rec["notes"])
    bench = audit["sections"]["benchmarks"]
    assert bench["emobench"]["EU"]["scoring"] == "generate"
    assert "expected_value" not in bench["eqbench"]
    assert audit["sections"]["stimuli"]["scoring"] == "generate"
    assert len(chat_server.requests) > TINY.meld_limit
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.count("Skipped: needs the model's weights") == 2
    assert "cannot score given answers" in md
