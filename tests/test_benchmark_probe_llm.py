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


def _model(accs: list[float], persistence: list[float]) -> dict[str, Any]:
    curve = _curve(accs)
    best = max(curve["scores"], key=lambda s: s["accuracy"])
    entry = {
        "curves": {"linear/model": curve},
        "summary": {"linear/model": best},
        "majority_baseline": {"accuracy": 0.3},
        "zero_shot": probe_llm.zero_shot_label_scoring("m", ["a"], ["joy"]),
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
    zs = out["probes_beat_zero_shot_prompting"]
    assert zs["status"] == probe_llm.PENDING_ZERO_SHOT
    assert zs["results"]["m/goemotions"]["holds"] is None


def test_claims_fail_for_a_late_peak_and_fading_signal() -> None:
    out = probe_llm.claims({"m": _model([0.3, 0.4, 0.45, 0.5, 0.6], [0.6, 0.35])})
    assert out["signal_peaks_mid_network"]["results"]["m/goemotions"]["holds"] is False
    assert out["tone_persists_for_hundreds_of_tokens"]["results"]["m"]["holds"] is False


def test_persistence_layers_include_best_and_stay_in_range() -> None:
    assert probe_llm._persistence_layers(30, 13) == [1, 7, 13, 15, 22, 30]
    assert probe_llm._persistence_layers(18, 18) == [1, 4, 9, 13, 18]
