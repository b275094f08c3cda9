"""Tests of emoscope.curriculum: label similarity, dialogue difficulty and the bucket schedule.

The expected difficulties are worked out by hand in the comments (k = 1, b = 0.4 unless said).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from emoscope.curriculum import (
    BucketSchedule,
    CurriculumConfig,
    curriculum_epochs,
    dialogue_difficulty,
    emotion_similarity,
    example_difficulties,
    label_angles,
    shift_score,
    similarity_matrix,
)
from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy

COS54 = math.cos(math.radians(54))  # 0.5877853
COS72 = math.cos(math.radians(72))  # 0.3090170

# A toy taxonomy with explicit circle positions, for round numbers (N = 5).
TOY = Taxonomy("toy", ("neutral", "calm", "glad", "tense", "gloomy"))
TOY_CIRCLE = {
    "calm": (0.8, -0.6),
    "glad": (0.8, 0.6),  # cos(calm, glad) = 0.64 - 0.36 = 0.28
    "tense": (-0.6, 0.8),
    "gloomy": (-0.8, -0.6),  # cos(tense, gloomy) = 0.48 - 0.48 = 0
}


# ------------------------------------------------------------------------------------------
# Label similarity


def test_reference_circle_angles_and_similarities() -> None:
    angles = label_angles("meld", "reference")
    assert "neutral" not in angles
    assert angles["joy"] == pytest.approx(3 * math.pi / 20)
    assert angles["surprise"] == pytest.approx(9 * math.pi / 20)
    # sadness sits at 29π/20, i.e. -11π/20 in (-π, π]
    assert angles["sadness"] == pytest.approx(-11 * math.pi / 20)
    # joy (27°) vs surprise (81°): same positive valence, cos 54°
    assert emotion_similarity("joy", "surprise", "meld", "reference") == pytest.approx(COS54)
    # anger (99°) vs fear (171°): both negative valence, cos 72°
    assert emotion_similarity("anger", "fear", "meld", "reference") == pytest.approx(COS72)
    # surprise (valence +cos 81°) vs anger (valence −cos 81°): opposite signs
    assert emotion_similarity("surprise", "anger", "meld", "reference") == 0.0
    # anger (99°) vs sadness (261°): same sign but cos 162° < 0, clipped to 0
    assert emotion_similarity("anger", "sadness", "meld", "reference") == 0.0
    # neutral with anything: 1/N, N = 7 MELD labels
    assert emotion_similarity("neutral", "fear", "meld", "reference") == pytest.approx(1 / 7)
    assert emotion_similarity("Joy", 1, "meld", "reference") == 1.0  # name or index, same label


def test_vad_circle_uses_label_vad() -> None:
    # MELD joy VAD (0.96, 0.648), surprise (0.75, 0.75):
    # (0.96·0.75 + 0.648·0.75) / (1.158233 · 1.060660) = 1.206 / 1.228489 = 0.98170
    assert emotion_similarity("joy", "surprise", "meld") == pytest.approx(0.98170, abs=1e-4)
    # anger (-0.666, 0.73), sadness (-0.896, -0.424):
    # (0.596736 - 0.309520) / (0.988158 · 0.991258) = 0.287216 / 0.979520 = 0.29322
    assert emotion_similarity("anger", "sadness", "meld") == pytest.approx(0.29322, abs=1e-4)
    assert emotion_similarity("joy", "anger", "meld") == 0.0  # opposite valence


def test_similarity_matrix_is_symmetric_in_unit_range() -> None:
    for tax in ("meld", "emorynlp", "goemotions", "plutchik"):
        m = similarity_matrix(tax)
        assert np.allclose(m, m.T)
        assert m.min() >= 0 and m.max() <= 1
        assert np.allclose(np.diag(m), 1)
    m = similarity_matrix("meld")
    m[0, 0] = 5  # a copy: the cached matrix is not changed
    assert similarity_matrix("meld")[0, 0] == 1


def test_shift_score() -> None:
    assert shift_score("joy", "surprise", "meld", circle="reference") == pytest.approx(COS54 + 0.4)
    assert shift_score("joy", "joy", "meld") == 0.0  # no shift
    assert shift_score("joy", None, "meld") == 0.0  # unknown label
    # k = 2, bias = 0.1: 2 · (1/7) + 0.1
    assert shift_score("neutral", "joy", "meld", k=2, bias=0.1) == pytest.approx(2 / 7 + 0.1)


def test_reference_circle_unavailable_for_goemotions() -> None:
    with pytest.raises(EmoscopeError, match="reference circle"):
        similarity_matrix("goemotions", "reference")
    with pytest.raises(EmoscopeError, match="unknown circle"):
        similarity_matrix("meld", "square")


# ------------------------------------------------------------------------------------------
# Dialogue difficulty

# MELD, reference circle, N = 7, k = 1, b = 0.4.
MELD_LABELS = ["joy", "surprise", "surprise", "anger", "fear", "neutral"]
MELD_SPEAKERS = ["A", "B", "A", "A", "B", "A"]
# Same-speaker shifts:
#   A: joy → surprise → anger → neutral
#      joy→surprise      cos54 + 0.4          = 0.9877853
#      surprise→anger    opposite valence: 0.4 = 0.4
#      anger→neutral     1/7 + 0.4            = 0.5428571
#   B: surprise → fear   opposite valence: 0.4 = 0.4
#   same = 2.3306424
# Different-speaker shifts (adjacent turns, speaker changes):
#   1→2 A joy / B surprise        0.9877853
#   2→3 B surprise / A surprise   same label: 0
#   4→5 A anger / B fear          cos72 + 0.4 = 0.7090170
#   5→6 B fear / A neutral        1/7 + 0.4   = 0.5428571
#   cross = 2.2396594
# speakers p = 2, utterances n = 6
SAME = (COS54 + 0.4) + 0.4 + (1 / 7 + 0.4) + 0.4
CROSS = (COS54 + 0.4) + (COS72 + 0.4) + (1 / 7 + 0.4)


def test_hand_computed_meld_dialogue() -> None:
    same, cross = SAME, CROSS
    assert same == pytest.approx(2.3306424)
    assert cross == pytest.approx(2.2396594)
    got = dialogue_difficulty(MELD_LABELS, MELD_SPEAKERS, "meld", circle="reference")
    # (2.3306424 + 2.2396594 + 2) / (6 + 2) = 6.5703018 / 8
    assert got == pytest.approx(0.8212877)
    got = dialogue_difficulty(
        MELD_LABELS, MELD_SPEAKERS, "meld", circle="reference", strategy="emotion-shift"
    )
    # (2.3306424 + 2) / (6 + 2) = 4.3306424 / 8
    assert got == pytest.approx(0.5413303)
    assert dialogue_difficulty(MELD_LABELS, MELD_SPEAKERS, "meld", strategy="none") == 0.0


# Toy taxonomy, explicit circle, N = 5, k = 2, b = 0.1.
TOY_LABELS = ["calm", "glad", "glad", None, "calm", "neutral"]
TOY_SPEAKERS = ["X", "Y", "X", "Z", "X", "Y"]
# A shift between calm and glad scores 2·0.28 + 0.1 = 0.66; with neutral 2·(1/5) + 0.1 = 0.5.
# Same-speaker: X calm→glad 0.66, glad→calm 0.66; Y glad→neutral 0.5; Z (only None) 0
#   same = 1.82
# Different-speaker: X calm/Y glad 0.66; Y glad/X glad 0 (same); X glad/Z None 0;
#   Z None/X calm 0; X calm/Y neutral 0.5
#   cross = 1.16
# speakers p = 3, utterances n = 6


def test_hand_computed_toy_dialogue_with_unknown_label_and_weights() -> None:
    kw = {"k": 2.0, "b": 0.1, "circle": TOY_CIRCLE}
    # (1.82 + 1.16 + 3) / (6 + 3) = 5.98 / 9
    assert dialogue_difficulty(TOY_LABELS, TOY_SPEAKERS, TOY, **kw) == pytest.approx(5.98 / 9)
    # emotion-shift: (1.82 + 3) / 9
    got = dialogue_difficulty(TOY_LABELS, TOY_SPEAKERS, TOY, strategy="emotion-shift", **kw)
    assert got == pytest.approx(4.82 / 9)
    # weights 2 (same) and 0.5 (cross): (3.64 + 0.58 + 3) / 9 = 7.22 / 9
    got = dialogue_difficulty(
        TOY_LABELS, TOY_SPEAKERS, TOY, same_speaker_weight=2.0, cross_speaker_weight=0.5, **kw
    )
    assert got == pytest.approx(7.22 / 9)
    # labels as indices into TOY.labels give the same result
    as_index = [None if lab is None else TOY.labels.index(lab) for lab in TOY_LABELS]
    assert dialogue_difficulty(as_index, TOY_SPEAKERS, TOY, **kw) == pytest.approx(5.98 / 9)
    # tense → gloomy: cos 0 → s = 0, a shift still scores b: one speaker, (0.1 + 1) / (2 + 1)
    assert dialogue_difficulty(["tense", "gloomy"], ["X", "X"], TOY, **kw) == pytest.approx(1.1 / 3)


def test_simple_dialogues() -> None:
    # one utterance: (0 + 1) / (1 + 1)
    assert dialogue_difficulty(["joy"], ["A"], "meld") == 0.5
    # no shift, one speaker, four turns: (0 + 1) / (4 + 1)
    assert dialogue_difficulty(["joy"] * 4, ["A"] * 4, "meld") == pytest.approx(0.2)
    # two speakers alternating, no shift: (0 + 2) / (4 + 2)
    assert dialogue_difficulty(["sadness"] * 4, ["A", "B"] * 2, "meld") == pytest.approx(1 / 3)
    # unknown speakers (None) count as one speaker: (0 + 1) / (3 + 1)
    assert dialogue_difficulty(["joy"] * 3, [None] * 3, "meld") == pytest.approx(0.25)
    # more shifts make a dialogue harder
    calm = dialogue_difficulty(["joy", "joy", "joy", "joy"], ["A", "B", "A", "B"], "meld")
    wild = dialogue_difficulty(["joy", "anger", "sadness", "joy"], ["A", "B", "A", "B"], "meld")
    assert wild > calm


def test_difficulty_errors() -> None:
    with pytest.raises(EmoscopeError, match="one speaker per label"):
        dialogue_difficulty(["joy", "joy"], ["A"], "meld")
    with pytest.raises(EmoscopeError, match="empty dialogue"):
        dialogue_difficulty([], [], "meld")
    with pytest.raises(EmoscopeError, match="unknown meld label 'happy'"):
        dialogue_difficulty(["happy"], ["A"], "meld")
    with pytest.raises(EmoscopeError, match="out of range"):
        dialogue_difficulty([7], ["A"], "meld")
    with pytest.raises(EmoscopeError, match="unknown curriculum strategy"):
        dialogue_difficulty(["joy"], ["A"], "meld", strategy="random")
    with pytest.raises(EmoscopeError, match="lack labels"):
        dialogue_difficulty(["calm"], ["A"], TOY, circle={"calm": (1.0, 0.0)})


def test_example_difficulties_on_mini_meld(mini_data_root: Path) -> None:
    from emoscope.datasets import load_dataset

    ds = load_dataset("meld", "train", root=mini_data_root)
    diffs = example_difficulties(ds)
    assert len(diffs) == len(ds.examples)
    assert ds.dialogues is not None
    pos = 0
    for d in ds.dialogues:
        exs = ds.examples[pos : pos + len(d)]
        expected = dialogue_difficulty(
            [e.label for e in exs], [u.speaker for u in d.utterances], "meld"
        )
        assert diffs[pos : pos + len(d)] == [pytest.approx(expected)] * len(d)
        pos += len(d)
    none = example_difficulties(ds, CurriculumConfig(strategy="none"))
    assert set(none) == {0.0}
    go = load_dataset("goemotions", "train", root=mini_data_root)
    assert set(example_difficulties(go)) == {0.5}  # standalone texts: one-turn dialogues


# ------------------------------------------------------------------------------------------
# Schedule


def test_curriculum_epochs_two_buckets() -> None:
    d = [0.9, 0.1, 0.5, 0.3]  # easy-to-hard order: 1, 3, 2, 0
    got = curriculum_epochs(d, 4, shuffle=False)
    assert got == [[1, 3], [1, 3, 2, 0], [1, 3, 2, 0], [1, 3, 2, 0]]
    shuffled = curriculum_epochs(d, 4, rng=0)
    assert sorted(shuffled[0]) == [1, 3]
    assert all(sorted(e) == [0, 1, 2, 3] for e in shuffled[1:])
    assert curriculum_epochs(d, 4, rng=0) == shuffled  # seeded: reproducible
    rr = curriculum_epochs(d, 4, rng=random.Random(1))  # random.Random works too
    assert sorted(rr[0]) == [1, 3]
    assert curriculum_epochs(d, 0) == []


def test_buckets_ties_and_remainder() -> None:
    # stable sort: ties keep input order → order 2, 0, 1, 3, 4; size ⌊5/2⌋ = 2, rest to last
    s = BucketSchedule([0.5, 0.5, 0.1, 0.5, 0.5], n_buckets=2)
    assert s.order == [2, 0, 1, 3, 4]
    assert s.buckets == [[2, 0], [1, 3, 4]]


def test_three_buckets_two_epochs_per_stage() -> None:
    d = [6, 5, 4, 3, 2, 1, 0]  # order 6, 5, 4, 3, 2, 1, 0; buckets [6,5] [4,3] [2,1,0]
    s = BucketSchedule(d, n_buckets=3, epochs_per_stage=2)
    assert s.buckets == [[6, 5], [4, 3], [2, 1, 0]]
    vis = [s.visible(e) for e in range(8)]
    assert vis[0] == vis[1] == [6, 5]
    assert vis[2] == vis[3] == [6, 5, 4, 3]
    assert all(v == [6, 5, 4, 3, 2, 1, 0] for v in vis[4:])
    assert s.phases(8) == [([6, 5], 2), ([6, 5, 4, 3], 2), ([6, 5, 4, 3, 2, 1, 0], 4)]
    assert s.phases(3) == [([6, 5], 2), ([6, 5, 4, 3], 1)]  # too few epochs to reach all


def test_one_bucket_and_clamping() -> None:
    assert curriculum_epochs([3, 1, 2], 2, n_buckets=1, shuffle=False) == [[1, 2, 0]] * 2
    s = BucketSchedule([0.2, 0.1], n_buckets=5)  # more buckets than items: clamped to 2
    assert s.n_buckets == 2 and s.buckets == [[1], [0]]


def test_config_none_and_round_trip() -> None:
    cfg = CurriculumConfig(strategy="none")
    epochs = cfg.epochs([0.3, 0.1, 0.2, 0.9], 3, rng=0)
    assert all(sorted(e) == [0, 1, 2, 3] for e in epochs)
    paper = CurriculumConfig()
    assert (paper.k, paper.b, paper.n_buckets, paper.strategy) == (1.0, 0.4, 2, "speaker-weighted")
    assert CurriculumConfig.from_dict(paper.to_dict()) == paper
    with pytest.raises(EmoscopeError, match="unknown curriculum settings"):
        CurriculumConfig.from_dict({"buckets": 3})
    assert paper.difficulty(MELD_LABELS, MELD_SPEAKERS, "meld") == dialogue_difficulty(
        MELD_LABELS, MELD_SPEAKERS, "meld"
    )


def test_schedule_errors() -> None:
    with pytest.raises(EmoscopeError, match="non-empty"):
        curriculum_epochs([], 2)
    with pytest.raises(EmoscopeError, match="finite"):
        curriculum_epochs([0.1, float("nan")], 2)
    with pytest.raises(EmoscopeError, match="n_buckets"):
        curriculum_epochs([0.1], 2, n_buckets=0)
    with pytest.raises(EmoscopeError, match="n_epochs"):
        curriculum_epochs([0.1], -1)
    with pytest.raises(EmoscopeError, match="epochs_per_stage"):
        curriculum_epochs([0.1], 1, epochs_per_stage=0)


# ------------------------------------------------------------------------------------------
# benchmarks/ablation_curriculum.py


@pytest.mark.slow
def test_ablation_script_smoke(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import sys

    from bench_helpers import load_benchmark

    bench = load_benchmark("ablation_curriculum")
    out = tmp_path / "ablation.json"
    argv = ["x", "--seeds", "1,2", "--epochs", "2", "--limit", "40", "--threads", "1"]
    argv += ["--base-model", str(tiny_base_model), "--data-root", str(mini_data_root)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    bench.main()
    got = json.loads(out.read_text())
    runs = got["runs"]
    assert sorted((r["strategy"], r["seed"]) for r in runs) == [
        ("none", 1),
        ("none", 2),
        ("speaker-weighted", 1),
        ("speaker-weighted", 2),
    ]
    for r in runs:
        assert 0.0 <= r["dev_weighted_f1"] <= 1.0 and 0.0 <= r["test_weighted_f1"] <= 1.0
        assert r["dev_weighted_f1"] == max(r["dev_weighted_f1_per_epoch"])
    curr = [r for r in runs if r["strategy"] == "speaker-weighted"]
    assert all(r["units_per_epoch"][0] < r["units_per_epoch"][1] for r in curr)
    s = got["summary"]["none"]["test_weighted_f1"]
    vals = [r["test_weighted_f1"] for r in runs if r["strategy"] == "none"]
    assert s["mean"] == pytest.approx(np.mean(vals))
    assert s["sd"] == pytest.approx(np.std(vals, ddof=1))
    # A rerun skips the finished (strategy, seed) pairs.
    bench.main()
    assert len(json.loads(out.read_text())["runs"]) == 4
