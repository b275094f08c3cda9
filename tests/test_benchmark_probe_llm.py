"""The claim checks and helpers of benchmarks/probe_llm.py (the run itself is a benchmark)."""

from __future__ import annotations

from typing import Any

from bench_helpers import load_benchmark

probe_llm = load_benchmark("probe_llm")


def _curve(accs: list[float]) -> dict[str, Any]:
    scores = [
        {"layer": i, "accuracy": a, "accuracy_ci": [a - 0.02, a + 0.02]} for i, a in enumerate(accs)
    ]
    return {"scores": scores}


def _model(
    accs: list[float], persistence: list[float], zero_shot: tuple[float, ...] = (0.2, 0.3, 0.35)
) -> dict[str, Any]:
    curve = _curve(accs)
    best = max(curve["scores"], key=lambda s: s["accuracy"])
    entry = {
        "curves": {"linear/model": curve},
        "summary": {"linear/model": best},
        "majority_baseline": {"accuracy": 0.3},
        "zero_shot": {
            row: {"accuracy": a, "accuracy_ci": [a - 0.03, a + 0.03], "macro_f1": a / 2}
            for row, a in zip(probe_llm.ZERO_SHOT_ROWS, zero_shot, strict=True)
        },
    }
    offsets = [0, 256]
    pers = {
        str(best["layer"]): [
            {"offset": k, "accuracy": a} for k, a in zip(offsets, persistence, strict=True)
        ]
    }
    return {
        "n_layers": len(accs) - 1,
        "datasets": {"goemotions": entry},
        "persistence": {"layers": pers},
    }


def test_claims_mid_peak_and_persistence_hold() -> None:
    out = probe_llm.claims({"m": _model([0.3, 0.4, 0.6, 0.5, 0.45], [0.6, 0.5])})
    peak = out["signal_peaks_mid_network"]["results"]["m/goemotions"]
    assert peak["best_layer"] == 2 and peak["holds"] is True
    assert out["tone_persists_for_hundreds_of_tokens"]["results"]["m"]["holds"] is True
    zs = out["probes_beat_zero_shot_prompting"]["results"]["m/goemotions"]
    assert zs["holds"] is True and zs["best_zero_shot_row"] == "calibrated_label_prior"
    assert zs["zero_shot_accuracy"] == {
        "raw": 0.2,
        "calibrated": 0.3,
        "calibrated_label_prior": 0.35,
    }


def test_probes_do_not_beat_zero_shot_when_the_intervals_overlap() -> None:
    out = probe_llm.claims({"m": _model([0.3, 0.4, 0.6, 0.5, 0.45], [0.6, 0.5], (0.2, 0.56, 0.3))})
    zs = out["probes_beat_zero_shot_prompting"]["results"]["m/goemotions"]
    assert zs["holds"] is False and zs["best_zero_shot_row"] == "calibrated"


def test_claims_fail_for_a_late_peak_and_fading_signal() -> None:
    out = probe_llm.claims({"m": _model([0.3, 0.4, 0.45, 0.5, 0.6], [0.6, 0.35])})
    assert out["signal_peaks_mid_network"]["results"]["m/goemotions"]["holds"] is False
    assert out["tone_persists_for_hundreds_of_tokens"]["results"]["m"]["holds"] is False


def test_persistence_layers_include_best_and_stay_in_range() -> None:
    assert probe_llm._persistence_layers(30, 13) == [1, 7, 13, 15, 22, 30]
    assert probe_llm._persistence_layers(18, 18) == [1, 4, 9, 13, 18]
